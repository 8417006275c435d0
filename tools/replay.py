#!/usr/bin/env python3
"""`just replay`: move the jobs in the dead-letter queue back to the job queue.

The DLQ holds the messages of jobs that failed on every allowed delivery
(their records say `failed`, with the reason). Once the cause is fixed, a
replay gives each of them a new round of deliveries: a job that succeeds
becomes `complete`, one that fails again returns to the DLQ as `failed`.

Why not SQS's own redrive (StartMessageMoveTask): a moved message is a new
message with a new MessageId, and messages queued before submits went
through job-commands name their job only by their MessageId. So this tool
moves each message itself and names its job explicitly in the `jobId`
message attribute, which the job-processor prefers over the MessageId (and
which job-commands now sets on every message); every other attribute (the
owner, the callback URL) is kept. A message is deleted
from the DLQ only after the job queue accepted its copy, so a crash of this
tool can duplicate a job's message (harmless: processing is idempotent) but
never lose one. The same code serves the local target (moto, which has no
StartMessageMoveTask) and a deployed stage.

Usage: replay.py [--outputs FILE] [--dry-run] [--max N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "e2e"))

from target import Target, outputs_path  # noqa: E402

JOB_ID_ATTRIBUTE = "jobId"


def job_id_of(message: dict) -> str:
    attribute = message.get("MessageAttributes", {}).get(JOB_ID_ATTRIBUTE)
    if attribute and attribute.get("StringValue"):
        return attribute["StringValue"]
    return message["MessageId"]


def copy_attributes(message: dict) -> dict:
    """The message's attributes as SendMessage takes them, plus its job id."""
    attributes = {}
    for name, value in message.get("MessageAttributes", {}).items():
        kept = {"DataType": value["DataType"]}
        for key in ("StringValue", "BinaryValue"):
            if key in value:
                kept[key] = value[key]
        attributes[name] = kept
    attributes[JOB_ID_ATTRIBUTE] = {"DataType": "String", "StringValue": job_id_of(message)}
    return attributes


def replay(sqs, dlq_url: str, queue_url: str, *, dry_run: bool = False, limit: int | None = None, log=print) -> list[str]:
    """Moves up to `limit` messages; returns the job ids moved (or seen, on a dry run)."""
    moved: list[str] = []
    looked_at: list[str] = []  # dry run: receipt handles to release at the end
    empty_polls = 0
    while limit is None or len(moved) < limit:
        want = 10 if limit is None else min(10, limit - len(moved))
        messages = sqs.receive_message(
            QueueUrl=dlq_url,
            MaxNumberOfMessages=want,
            # Hidden while being moved; a dry run only looks, for as long as
            # it takes to see every message once.
            VisibilityTimeout=60,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            empty_polls += 1
            if empty_polls >= 2:  # a long poll came back empty twice: the DLQ is drained
                break
            continue
        empty_polls = 0
        if dry_run:
            moved.extend(job_id_of(m) for m in messages)
            looked_at.extend(m["ReceiptHandle"] for m in messages)
            continue
        entries = [
            {"Id": str(i), "MessageBody": m["Body"], "MessageAttributes": copy_attributes(m)}
            for i, m in enumerate(messages)
        ]
        sent = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        for failure in sent.get("Failed", []):
            m = messages[int(failure["Id"])]
            log(f"  cannot requeue job {job_id_of(m)}: {failure.get('Code')}: {failure.get('Message')} (left in the DLQ)")
        ok = [messages[int(s["Id"])] for s in sent.get("Successful", [])]
        if ok:
            deleted = sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(ok)],
            )
            for failure in deleted.get("Failed", []):
                log(f"  requeued job {job_id_of(ok[int(failure['Id'])])} but could not delete it from the DLQ: {failure.get('Message')}")
        moved.extend(job_id_of(m) for m in ok)
        log(f"  moved {len(moved)} so far")
    # A dry run makes what it looked at visible again at once.
    for i in range(0, len(looked_at), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=dlq_url,
            Entries=[{"Id": str(j), "ReceiptHandle": h, "VisibilityTimeout": 0} for j, h in enumerate(looked_at[i : i + 10])],
        )
    return moved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outputs", type=Path, default=None, help="outputs file (default: $JOBS_OUTPUTS or .local/outputs.json)")
    parser.add_argument("--dry-run", action="store_true", help="list the jobs in the DLQ without moving them")
    parser.add_argument("--max", type=int, default=None, help="move at most this many messages")
    args = parser.parse_args()
    if args.max is not None and args.max < 1:
        parser.error("--max must be at least 1")
    target = Target.from_file(args.outputs or outputs_path())
    sqs = target.client("sqs")
    dlq, queue = target["deadLetterQueueUrl"], target["jobQueueUrl"]
    print(f"==> {'Listing' if args.dry_run else 'Replaying'} the dead-letter queue {dlq}" + ("" if args.dry_run else f" into {queue}"))
    jobs = replay(sqs, dlq, queue, dry_run=args.dry_run, limit=args.max)
    for job_id in jobs:
        print(f"  {job_id}")
    verb = "in the DLQ" if args.dry_run else "replayed"
    print(f"==> {len(jobs)} job(s) {verb}" + ("; follow them with GET /job-status/<jobId>" if jobs and not args.dry_run else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
