"""The emulator-bound limit is only a limit of this system if the bench's mix
sends the requests the system sends: job-commands' submit (the key's PutItem
and UpdateItem, functions/jobs-aws/src/idempotency.rs; the SendMessage,
functions/jobs-aws/src/sqs.rs; the record_submitted UpdateItem,
functions/jobs-aws/src/dynamodb.rs; in functions/jobs-core/src/submission.rs'
order) and the processor's two UpdateItem calls (dynamodb.rs). moto parses
every expression in Python, so a simpler write is a cheaper one (the mix's
earlier, shorter writes cost ~35 % less of moto's CPU per job and overstated
the limit)."""

import json
import re
from pathlib import Path

import bench
import cost

ROOT = Path(__file__).resolve().parent.parent
DYNAMODB_RS = (ROOT / "functions" / "jobs-aws" / "src" / "dynamodb.rs").read_text()
IDEMPOTENCY_RS = (ROOT / "functions" / "jobs-aws" / "src" / "idempotency.rs").read_text()
SQS_RS = (ROOT / "functions" / "jobs-aws" / "src" / "sqs.rs").read_text()
SUBMISSION_RS = (ROOT / "functions" / "jobs-core" / "src" / "submission.rs").read_text()
ATTR = dict(re.findall(r'pub const (\w+): &str = "([^"]+)";', DYNAMODB_RS.split("pub mod attr {")[1].split("}")[0]))
KEY_ATTR = dict(re.findall(r'pub const (\w+): &str = "([^"]+)";', IDEMPOTENCY_RS.split("pub mod attr {")[1].split("}")[0]))
# Expression fragments the writes share (`const NOT_CLOSED: &str = "...";`), for `{NAME}` in a format!.
FRAGMENTS = dict(re.findall(r'^const (\w+): &str = "([^"]+)";', DYNAMODB_RS, re.M))


def rust_literal(text: str) -> str:
    """A Rust string literal's value, with `\\` line continuations joined."""
    return re.sub(r"\\\n\s*", "", text)


def processor_write(fn: str) -> dict:
    """The update, condition and attribute names of one of the store's writes, read from the Rust source."""
    body = DYNAMODB_RS.split(f"async fn {fn}(")[1].split("\n    }\n}")[0]
    update = rust_literal(re.search(r'\.update_expression\((?:format!\()?\s*"((?:[^"\\]|\\.)*)"', body, re.S).group(1))
    if "{set_owner}" in update:
        # `let set_owner = if ... { "..." }` (the processor's) or `set_owner = "...";` (record_submitted's).
        owner = re.search(r'let set_owner = if [^{]+\{ "([^"]+)"', body) or re.search(r'\bset_owner = "([^"]+)";', body)
        update = update.replace("{set_owner}", owner.group(1))
    # The bench's jobs carry no callback URL: `set_callback` adds nothing to their writes.
    assert "fn set_callback(" in DYNAMODB_RS and 'let Some(callback) = &sub.callback else { return (request, String::new()) };' in DYNAMODB_RS
    update = update.replace("{set_callback}", "")
    condition = re.search(r'\.condition_expression\((?:format!\()?"([^"]+)"\)', body).group(1)
    condition = re.sub(r"\{(\w+)\}", lambda m: FRAGMENTS[m.group(1)], condition)
    names = {n: ATTR[a] for n, a in re.findall(r'\.expression_attribute_names\("(#\w+)", attr::(\w+)\)', body)}
    values = set(re.findall(r'\.expression_attribute_values\("(:\w+)"', body))
    # Bound for every write that leaves a closed job alone (`closed_statuses`).
    if "closed_statuses(" in body:
        names["#status"] = ATTR["STATUS"]
        values |= {":complete", ":cancelled"}
    return {"update": update, "condition": condition, "names": names, "values": values}


def key_write(fn: str) -> dict:
    """One of the idempotency keys table's writes (idempotency.rs), read from the Rust source."""
    body = IDEMPOTENCY_RS.split(f"async fn {fn}(")[1].split("\n    }\n}")[0]
    update = re.search(r'\.update_expression\("([^"]+)"\)', body)
    types = {"S": "S", "Bool": "BOOL", "n": "N"}
    return {
        "update": update.group(1) if update else None,
        "condition": re.search(r'\.condition_expression\("([^"]+)"\)', body).group(1),
        "names": {n: KEY_ATTR[a] for n, a in re.findall(r'\.expression_attribute_names\("(#\w+)", attr::(\w+)\)', body)},
        "values": set(re.findall(r'\.expression_attribute_values\("(:\w+)"', body)),
        "item": {KEY_ATTR[a]: types[t] for a, t in re.findall(r'\.item\(attr::(\w+), (?:AttributeValue::)?(\w+)\(', body)},
        "key": [KEY_ATTR[a] for a in re.findall(r'\.key\(attr::(\w+),', body)],
        "all_old_on_failure": "ReturnValuesOnConditionCheckFailure::AllOld" in body,
    }


class Recorder(bench.RawAws):
    def __init__(self):
        self.ids = {"queue": "http://127.0.0.1:1/123456789012/jobs", "table": "t", "keys": "k", "owner": "0b1c-owner",
                    "bucket": "results", "simulator": "sim", "bus": "jobs-bus"}
        self.calls = []
        self.pending_events = []

    def call(self, service, path, body, target=None, ctype="application/x-amz-json-1.0"):
        self.calls.append({"service": service, "path": path, "body": body.decode(), "target": target, "ctype": ctype})
        return b'{"FailedEntryCount": 0}' if service == "events" else b"{}"


def mix_write(method: str) -> dict:
    rec = Recorder()
    getattr(rec, method)("job-1", "2026-12-05T00:00:00Z")
    req = json.loads(rec.calls[0]["body"])
    assert rec.calls[0]["target"] == "DynamoDB_20120810.UpdateItem"
    return {"update": req["UpdateExpression"], "condition": req["ConditionExpression"],
            "names": req["ExpressionAttributeNames"], "values": req["ExpressionAttributeValues"]}


def test_the_mix_records_a_job_as_the_processor_does():
    mix, rust = mix_write("record"), processor_write("record_attempt")
    assert mix["update"] == rust["update"]
    assert mix["condition"] == rust["condition"]
    assert mix["names"] == rust["names"]
    assert {":owner", ":payload", ":submittedAt", ":sent"} <= set(mix["values"])


def test_the_mix_completes_a_job_as_the_processor_does():
    mix, rust = mix_write("complete"), processor_write("complete_job")
    assert mix["update"] == rust["update"]
    assert mix["condition"] == rust["condition"]
    assert mix["names"] == rust["names"]


def test_the_mix_sends_what_job_commands_sends():
    rec = Recorder()
    rec.send("job-1")
    [call] = rec.calls
    # The AWS SDK's SQS client: the JSON protocol (awsJson1_0), at the endpoint's root.
    assert (call["service"], call["path"], call["target"], call["ctype"]) == (
        "sqs", "/", "AmazonSQS.SendMessage", "application/x-amz-json-1.0")
    sent = json.loads(call["body"])
    enqueue = SQS_RS.split("async fn enqueue_job(")[1].split("\n    }\n}")[0]
    assert ".queue_url(&self.queue_url)" in enqueue and sent["QueueUrl"] == rec.ids["queue"]
    # The body is the request as submitted: the bench's submits post JOB_BODY.
    assert ".message_body(&submission.payload)" in enqueue and sent["MessageBody"] == bench.JOB_BODY.decode()
    # The attributes: jobId always, owner with a caller (every bench submit has one),
    # callbackUrl only with a Job-Callback-Url, which the bench does not send.
    names = dict(re.findall(r'pub const (\w+): &str = "([^"]+)";', SQS_RS.split("pub mod message_attribute {")[1].split("}")[0]))
    sent_by = re.findall(r'\.message_attributes\(message_attribute::(\w+), string_attribute\(', enqueue)
    assert sent_by == ["JOB_ID", "OWNER", "CALLBACK_URL"]
    assert re.search(r'if let Some\(callback\) = &submission\.callback \{\s*request = request\.message_attributes\(message_attribute::CALLBACK_URL', enqueue)
    assert set(sent["MessageAttributes"]) == {names["JOB_ID"], names["OWNER"]}
    assert '.data_type("String")' in SQS_RS.split("fn string_attribute(")[1].split("\n}")[0]
    assert sent["MessageAttributes"][names["JOB_ID"]] == {"DataType": "String", "StringValue": "job-1"}
    assert sent["MessageAttributes"][names["OWNER"]] == {"DataType": "String", "StringValue": rec.ids["owner"]}
    # What SQS bills per chunk counts these attributes as cost.py does.
    assert cost.MESSAGE_ATTRIBUTE_BYTES == sum(len(n) + len("String") + 36 for n in (names["JOB_ID"], names["OWNER"]))


def test_the_mix_records_a_submitted_job_as_job_commands_does():
    rec = Recorder()
    rec.submitted("job-1", "2026-12-05T00:00:00Z", 1796428800000)
    [call] = rec.calls
    assert call["target"] == "DynamoDB_20120810.UpdateItem"
    req = json.loads(call["body"])
    rust = processor_write("record_submitted")
    assert req["TableName"] == rec.ids["table"] and req["Key"] == {ATTR["ID"]: {"S": "job-1"}}
    assert req["UpdateExpression"] == rust["update"]
    assert req["ConditionExpression"] == rust["condition"]
    assert req["ExpressionAttributeNames"] == rust["names"]
    assert set(req["ExpressionAttributeValues"]) == rust["values"]
    # No ReturnValues asked for: the SDK's default (NONE).
    assert ".return_values(" not in DYNAMODB_RS.split("async fn record_submitted(")[1].split("\n    }\n}")[0]
    assert "ReturnValues" not in req and "ReturnValuesOnConditionCheckFailure" not in req


def test_the_mix_claims_and_accepts_the_key_as_job_commands_does():
    rec = Recorder()
    rec.claim_key("job-1", "key-1", 1796428800000)
    rec.accept_key("job-1", "key-1")
    claim, accept = rec.calls
    assert claim["target"] == "DynamoDB_20120810.PutItem" and accept["target"] == "DynamoDB_20120810.UpdateItem"
    put, update = json.loads(claim["body"]), json.loads(accept["body"])
    rust = key_write("claim_key")
    assert put["TableName"] == rec.ids["keys"]
    assert {name: next(iter(v)) for name, v in put["Item"].items()} == rust["item"]
    # The key is scoped to its caller (KeyClaim::new: `<owner>#<key>`).
    assert 'scope: format!("{owner}#{}", key.as_str())' in SUBMISSION_RS
    assert put["Item"][KEY_ATTR["KEY"]] == {"S": f"{rec.ids['owner']}#key-1"}
    assert put["ConditionExpression"] == rust["condition"]
    assert put["ExpressionAttributeNames"] == rust["names"]
    assert set(put["ExpressionAttributeValues"]) == rust["values"]
    assert rust["all_old_on_failure"] and put["ReturnValuesOnConditionCheckFailure"] == "ALL_OLD"
    rust = key_write("accept_key")
    assert update["TableName"] == rec.ids["keys"] and list(update["Key"]) == rust["key"]
    assert update["UpdateExpression"] == rust["update"]
    assert update["ConditionExpression"] == rust["condition"]
    assert update["ExpressionAttributeNames"] == rust["names"]
    assert set(update["ExpressionAttributeValues"]) == rust["values"]


def test_one_job_of_the_mix_is_the_submit_then_the_processing_in_the_systems_order():
    rec = Recorder()
    bench.one_job(rec, receive=False)
    ops = [c["target"] or c["path"] for c in rec.calls]
    assert ops == ["DynamoDB_20120810.PutItem", "AmazonSQS.SendMessage", "DynamoDB_20120810.UpdateItem",
                   "DynamoDB_20120810.UpdateItem", "DynamoDB_20120810.UpdateItem",
                   "/2015-03-31/functions/sim/invocations", "DynamoDB_20120810.UpdateItem"]
    # job-commands' order (submission.rs): claim, send, record, accept.
    submit = SUBMISSION_RS.split("pub async fn submit<")[1].split("\n}\n")[0]
    steps = [submit.index(f".{step}(") for step in ("claim_key", "enqueue_job", "record_submitted", "accept_key")]
    assert steps == sorted(steps)
    # The same job throughout: the record the submit creates is the one the processor records on.
    bodies = [json.loads(c["body"]) for c in rec.calls]
    job = bodies[1]["MessageAttributes"]["jobId"]["StringValue"]
    assert bodies[0]["Item"]["jobId"]["S"] == job and bodies[3]["ExpressionAttributeValues"][":job"]["S"] == job
    assert bodies[2]["Key"] == bodies[4]["Key"] == bodies[6]["Key"] == {"jobRequestId": {"S": job}}
    # Every submit carries a key, in the mix, in the bench's submits and in the cost.
    assert cost.KEYED_SUBMIT_SHARE == 1.0
    header = re.search(r'pub const IDEMPOTENCY_KEY_HEADER: &str = "([^"]+)";', SUBMISSION_RS).group(1)
    first, second = bench.submit_headers("token"), bench.submit_headers("token")
    assert first[header] != second[header]
    # The round trips the bench prints: those the mix makes, and the two invokes it makes the calls of.
    per_job = {name: c for name, _, c, _ in bench.ROUND_TRIPS if c >= 1 and name not in bench.NOT_IN_MIX}
    assert sum(per_job.values()) == len(ops) + 1  # + the simulator's PutObject, inside its invoke
    assert "Invoke job-commands" in bench.NOT_IN_MIX and bench.trips_at_batch(10) == bench.r(
        sum(c for _, _, c, _ in bench.ROUND_TRIPS), 2)


HANDLER_RS = (ROOT / "functions" / "job-processor" / "src" / "handler.rs").read_text()
EVENTS_RS = (ROOT / "functions" / "jobs-aws" / "src" / "events.rs").read_text()
JOB_END_RS = (ROOT / "functions" / "jobs-core" / "src" / "job_end.rs").read_text()


def test_the_mix_publishes_a_jobs_end_as_the_processor_does():
    rec = Recorder()
    rec.pending_events = []
    for n in range(10):
        rec.end(f"job-{n}", "2026-12-05T00:00:01.000Z")
    # No read: the record comes back from the completing write (ALL_NEW);
    # one PutEvents per 10 ends (a full batch).
    [put] = rec.calls
    assert "get_job" not in HANDLER_RS.split("async fn process_message")[1].split("\n}\n")[0]
    assert ".return_values(ReturnValue::AllNew)" in DYNAMODB_RS.split("impl CompleteJob for DynamoJobStore")[1].split("\n}\n")[0]
    writer = Recorder()
    writer.complete("job-1", "2026-12-05T00:00:00Z")
    assert json.loads(writer.calls[0]["body"])["ReturnValues"] == "ALL_NEW"
    # One entry per end, on the bus, with the domain's source and detail-type.
    assert put["target"] == "AWSEvents.PutEvents"
    entries = json.loads(put["body"])["Entries"]
    assert len(entries) == 10 and "MAX_ENTRIES_PER_CALL: usize = 10" in EVENTS_RS
    entry = entries[0]
    assert entry["EventBusName"] == "jobs-bus"
    source = re.search(r'pub const SOURCE: &str = "([^"]+)";', JOB_END_RS).group(1)
    completed = re.search(r'pub const DETAIL_TYPE_COMPLETED: &str = "([^"]+)";', JOB_END_RS).group(1)
    assert (entry["Source"], entry["DetailType"]) == (source, completed)
    assert ".set_entries(Some(entries))" in EVENTS_RS and "chunks(MAX_ENTRIES_PER_CALL)" in EVENTS_RS
    assert "publish_ends(processor, &ends)" in HANDLER_RS
    assert set(json.loads(entry["Detail"])) >= {"jobId", "jobStatus", "owner", "completedAt", "attempts", "result"}
