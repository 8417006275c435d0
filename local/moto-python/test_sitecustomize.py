"""The corrections of moto in sitecustomize.py, in-process (moto's mock_aws,
boto3): each restores an AWS behaviour (a failed write changes nothing; a
cancelled transaction changes nothing) or keeps a call's cost from growing
with what is stored (counted in objects created or messages examined, never
in time). `just test` runs them; so does `python3 -m pytest local/moto-python`.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import threading
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

# Loaded under its own name, so a sitecustomize the interpreter may have is untouched.
_spec = importlib.util.spec_from_file_location("jobs_local_moto_patches", Path(__file__).with_name("sitecustomize.py"))
patches = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(patches)

from moto.core.common_models import BaseModel  # noqa: E402
from moto.dynamodb.models.dynamo_type import Item  # noqa: E402
from moto.sqs.models import sqs_backends  # noqa: E402

REGION = "us-east-1"
BIG = "x" * 410_000  # over DynamoDB's 400 KB item limit


@pytest.fixture
def ddb():
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName="jobs",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        )
        client.create_table(
            TableName="counters",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "bucket", "AttributeType": "S"},
                {"AttributeName": "counter", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "bucket", "KeyType": "HASH"},
                {"AttributeName": "counter", "KeyType": "RANGE"},
            ],
        )
        yield client


def items(ddb, table: str) -> list[dict]:
    return sorted(ddb.scan(TableName=table)["Items"], key=json.dumps)


def counter_key(name: str) -> dict:
    return {"bucket": {"S": "b"}, "counter": {"S": name}}


# ------------------------------------------------------------------ DynamoDB


def test_a_failed_update_of_a_new_key_leaves_no_item(ddb):
    """The job processor's record write of an oversized job: DynamoDB answers
    ValidationException and stores nothing (moto stored the bare key)."""
    with pytest.raises(ClientError) as e:
        ddb.update_item(
            TableName="jobs",
            Key={"id": {"S": "job-1"}},
            UpdateExpression="SET #s = :s, #p = :p",
            ExpressionAttributeNames={"#s": "jobStatus", "#p": "payload"},
            ExpressionAttributeValues={":s": {"S": "Submitted"}, ":p": {"S": BIG}},
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "exceeded the maximum allowed size" in e.value.response["Error"]["Message"]
    assert "Item" not in ddb.get_item(TableName="jobs", Key={"id": {"S": "job-1"}}, ConsistentRead=True)
    assert items(ddb, "jobs") == []


def test_an_attribute_replaced_in_a_large_item_counts_once(ddb):
    """A job recorded at submit with a 262 KB request, then the processor's
    record write: `payload = if_not_exists(payload, :payload)` keeps the item
    at its size, which DynamoDB allows (moto counted the payload twice)."""
    half = "x" * 262_050
    ddb.put_item(TableName="jobs", Item={"id": {"S": "job-1"}, "payload": {"S": half}})
    ddb.update_item(
        TableName="jobs",
        Key={"id": {"S": "job-1"}},
        UpdateExpression="SET payload = if_not_exists(payload, :p), attempts = :one",
        ExpressionAttributeValues={":p": {"S": half}, ":one": {"N": "1"}},
    )
    ddb.update_item(
        TableName="jobs", Key={"id": {"S": "job-1"}}, UpdateExpression="SET payload = :p",
        ExpressionAttributeValues={":p": {"S": half}},
    )
    # A second copy of it is over the limit, as on DynamoDB, and changes nothing.
    with pytest.raises(ClientError) as e:
        ddb.update_item(
            TableName="jobs", Key={"id": {"S": "job-1"}}, UpdateExpression="SET duplicate = payload",
        )
    assert "exceeded the maximum allowed size" in e.value.response["Error"]["Message"]
    [item] = items(ddb, "jobs")
    assert (len(item["payload"]["S"]), item["attempts"], "duplicate" in item) == (262_050, {"N": "1"}, False)


def test_a_failed_update_of_an_item_leaves_it_as_it_was(ddb):
    before = {"id": {"S": "job-1"}, "jobStatus": {"S": "Submitted"}, "attempts": {"N": "1"}}
    ddb.put_item(TableName="jobs", Item=before)
    with pytest.raises(ClientError) as e:
        # SET applies `attempts` first, then fails on the payload.
        ddb.update_item(
            TableName="jobs",
            Key={"id": {"S": "job-1"}},
            UpdateExpression="SET attempts = attempts + :one, payload = :p REMOVE jobStatus",
            ExpressionAttributeValues={":one": {"N": "1"}, ":p": {"S": BIG}},
        )
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert items(ddb, "jobs") == [before]


def test_a_failed_condition_still_changes_nothing_and_a_good_update_applies(ddb):
    ddb.put_item(TableName="jobs", Item={"id": {"S": "job-1"}, "jobStatus": {"S": "complete"}})
    with pytest.raises(ClientError) as e:
        ddb.update_item(
            TableName="jobs",
            Key={"id": {"S": "job-1"}},
            UpdateExpression="SET jobStatus = :s",
            ConditionExpression="jobStatus <> :c",
            ExpressionAttributeValues={":s": {"S": "Submitted"}, ":c": {"S": "complete"}},
        )
    assert e.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    ddb.update_item(
        TableName="jobs",
        Key={"id": {"S": "job-2"}},
        UpdateExpression="SET jobStatus = :s",
        ExpressionAttributeValues={":s": {"S": "Submitted"}},
    )
    assert items(ddb, "jobs") == [
        {"id": {"S": "job-1"}, "jobStatus": {"S": "complete"}},
        {"id": {"S": "job-2"}, "jobStatus": {"S": "Submitted"}},
    ]


def count_event(ddb, key: str, condition_on: str | None = None):
    """The object counter's transaction: the object's state (Put) and two counter ADDs."""
    put = {
        "TableName": "counters",
        "Item": {**counter_key(f"object#{key}"), "exists": {"BOOL": True}, "size": {"N": "10"}},
    }
    if condition_on:
        put |= {"ConditionExpression": "attribute_not_exists(#sk)", "ExpressionAttributeNames": {"#sk": "counter"}}
    add = lambda name: {  # noqa: E731
        "Update": {
            "TableName": "counters",
            "Key": counter_key(name),
            "UpdateExpression": "ADD created :one, #b :ten",
            "ExpressionAttributeNames": {"#b": "bytes"},
            "ExpressionAttributeValues": {":one": {"N": "1"}, ":ten": {"N": "10"}},
        }
    }
    ddb.transact_write_items(TransactItems=[add("counter#"), {"Put": put}, add("counter#results/")])


def test_a_cancelled_transaction_leaves_every_item_as_it_was(ddb):
    count_event(ddb, "results/a.json")
    before = items(ddb, "counters")
    # The counters are updated before the Put's condition fails: all are put back.
    with pytest.raises(ClientError) as e:
        count_event(ddb, "results/a.json", condition_on="object")
    assert e.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert items(ddb, "counters") == before
    # A validation error cancels it too: an item over 400 KB in the last operation.
    with pytest.raises(ClientError) as e:
        ddb.transact_write_items(
            TransactItems=[
                {"Update": {"TableName": "counters", "Key": counter_key("counter#"), "UpdateExpression": "ADD created :one", "ExpressionAttributeValues": {":one": {"N": "1"}}}},
                {"Put": {"TableName": "counters", "Item": {**counter_key("object#new"), "blob": {"S": "y"}}}},
                {"Update": {"TableName": "counters", "Key": counter_key("object#results/a.json"), "UpdateExpression": "SET blob = :big", "ExpressionAttributeValues": {":big": {"S": BIG}}}},
            ]
        )
    assert items(ddb, "counters") == before
    # And a transaction that succeeds applies every operation.
    count_event(ddb, "results/b.json", condition_on="object")
    after = {i["counter"]["S"]: i for i in items(ddb, "counters")}
    assert after["counter#"]["created"] == {"N": "2"} and after["counter#results/"]["bytes"] == {"N": "20"}
    assert "object#results/b.json" in after


def test_a_transaction_copies_only_the_items_it_touches(ddb, monkeypatch):
    """moto deep-copied every table a transaction names (its whole state, each
    time); the cost must not grow with the table."""
    for i in range(3000):
        ddb.put_item(TableName="counters", Item={**counter_key(f"object#results/{i:05d}.json"), "size": {"N": "1"}})
    created = []
    real_new = BaseModel.__new__

    def counting_new(cls, *args, **kwargs):
        created.append(cls.__name__)
        return real_new(cls, *args, **kwargs)

    monkeypatch.setattr(BaseModel, "__new__", staticmethod(counting_new))
    count_event(ddb, "results/new.json", condition_on="object")
    with pytest.raises(ClientError):
        count_event(ddb, "results/new.json", condition_on="object")
    monkeypatch.undo()
    copied_items = created.count("Item")
    assert copied_items <= 20, f"{copied_items} items created by two transactions on a table of 3,000"
    assert len(items(ddb, "counters")) == 3003


def test_models_are_not_kept_after_use(ddb):
    """moto kept every model instance (each replaced or copied item) in a list
    for its dashboard, forever."""
    for i in range(50):
        ddb.update_item(
            TableName="jobs",
            Key={"id": {"S": "job-1"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": str(i)}},
        )
    assert len(Item.instances_tracked) == 0


# ----------------------------------------------------------------------- SQS


class CountingList(list):
    """A queue's message list that counts the messages a call examines."""

    examined = 0

    def __iter__(self):
        for message in super().__iter__():
            CountingList.examined += 1
            yield message


@pytest.fixture
def sqs():
    with mock_aws():
        yield boto3.client("sqs", region_name=REGION)


def queue_model(url: str):
    return sqs_backends["123456789012"][REGION].queues[url.rsplit("/", 1)[1]]


def examined(queue, call):
    """How many messages `call` examines."""
    queue._messages = CountingList(queue._messages)
    CountingList.examined = 0
    result = call()
    return CountingList.examined, result


def test_send_receive_and_delete_examine_only_the_head_of_a_deep_queue(sqs):
    """moto's SendMessage and ReceiveMessage counted the whole queue (three
    scans per send, nine per received message) and DeleteMessage scanned and
    copied it: ~2 s per ReceiveMessage at a 3,000-message backlog."""
    url = sqs.create_queue(QueueName="jobs", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
    queue = queue_model(url)
    for _ in range(5000):
        sqs.send_message(QueueUrl=url, MessageBody="{}")
    n, _ = examined(queue, lambda: sqs.send_message(QueueUrl=url, MessageBody="{}"))
    assert n == 0, f"SendMessage examined {n} messages"
    for _ in range(5):  # 50 messages in flight at the head of the queue, as with 5 pollers
        n, got = examined(queue, lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"])
        assert len(got) == 10
        assert n <= 60, f"ReceiveMessage examined {n} messages"
    n, deleted = examined(
        queue,
        lambda: sqs.delete_message_batch(
            QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
        ),
    )
    assert len(deleted["Successful"]) == 10
    assert n <= 10 * 50, f"DeleteMessageBatch of 10 examined {n} messages"
    n, attrs = examined(
        queue, lambda: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    )
    assert attrs["Attributes"] == {"ApproximateNumberOfMessages": "4951"}
    # One pass per count (visible, in flight, delayed); moto made three per attribute asked.
    assert n <= 3 * 5000, f"GetQueueAttributes examined {n} messages (one pass is 4,991)"


def test_the_queue_still_behaves_as_sqs(sqs):
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName="jobs",
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
        },
    )["QueueUrl"]
    for body in ("a", "b", "c"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)

    def counts():
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
        a = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return tuple(int(a[n]) for n in names)

    assert counts() == (3, 0, 1)
    first = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=2)["Messages"]
    assert [m["Body"] for m in first] == ["a", "b"], "in order"
    assert counts() == (1, 2, 1)
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]] == ["c"]
    assert sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages") is None, "in flight"
    # Deleting twice is accepted; an unknown receipt handle is not.
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
    sqs.delete_message(QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"])
    with pytest.raises(ClientError) as e:
        sqs.delete_message(QueueUrl=url, ReceiptHandle="not-a-handle")
    assert e.value.response["Error"]["Code"] == "ReceiptHandleIsInvalid"
    assert counts() == (0, 2, 1)
    # Visible again at once, received a second time, then redriven to the DLQ.
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first[1]["ReceiptHandle"], VisibilityTimeout=0)
    again = sqs.receive_message(QueueUrl=url, AttributeNames=["ApproximateReceiveCount"])["Messages"]
    assert [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in again] == [("b", "2")]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=again[0]["ReceiptHandle"], VisibilityTimeout=0)
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None, "moved on its third receive"
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq)["Messages"]] == ["b"]
    # A long poll sleeps until a message comes (moto waits on a condition
    # between its scans; a wait that returned at once would spin).
    queue = queue_model(url)
    queue._messages.clear()
    waits = []
    real_wait = type(queue).wait_for_messages

    def counted_wait(q, timeout):
        waits.append(timeout)
        return real_wait(q, timeout)

    type(queue).wait_for_messages = counted_wait
    try:
        threading.Timer(0.3, lambda: sqs.send_message(QueueUrl=url, MessageBody="d")).start()
        got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=2).get("Messages")
    finally:
        type(queue).wait_for_messages = real_wait
    assert [m["Body"] for m in got] == ["d"]
    assert 1 <= len(waits) <= 3, f"the long poll scanned the queue {len(waits)} times"
    with pytest.raises(ClientError) as e:
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["NoSuchAttribute"])
    assert e.value.response["Error"]["Code"] == "InvalidAttributeName"


def test_a_message_past_its_retention_period_is_not_received(sqs):
    url = sqs.create_queue(QueueName="short", Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="old")
    queue_model(url)._messages[0].sent_timestamp -= 61_000
    assert sqs.receive_message(QueueUrl=url).get("Messages") is None


# ------------------------------------------------------------ S3 → SNS → http


class Endpoint(http.server.ThreadingHTTPServer):
    """An http subscription endpoint that fails its first `failures` deliveries."""

    def __init__(self, failures: int):
        super().__init__(("127.0.0.1", 0), EndpointHandler)
        self.failures = failures
        self.answers: list[int] = []
        self.delivered: list[dict] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/sns"


class EndpointHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        status = 500 if len(self.server.answers) < self.server.failures else 200
        self.server.answers.append(status)
        if status == 200:
            self.server.delivered.append(json.loads(body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


def bucket_publishing_to(url: str):
    s3 = boto3.client("s3", region_name=REGION)
    sns = boto3.client("sns", region_name=REGION)
    topic = sns.create_topic(Name="events")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=url)
    s3.create_bucket(Bucket="results")
    s3.put_bucket_notification_configuration(
        Bucket="results",
        NotificationConfiguration={"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return s3


def test_an_object_event_the_endpoint_fails_to_take_is_delivered_again():
    """moto POSTed each SNS delivery once and S3 swallowed a failure: the
    object event was lost without a trace."""
    endpoint = Endpoint(failures=2)
    with mock_aws():
        s3 = bucket_publishing_to(endpoint.url)
        endpoint.answers.clear(), endpoint.delivered.clear()  # the s3:TestEvent
        s3.put_object(Bucket="results", Key="results/a.json", Body=b"{}")
    endpoint.shutdown()
    assert endpoint.answers == [500, 500, 200]
    [delivery] = endpoint.delivered
    assert json.loads(delivery["Message"])["Records"][0]["s3"]["object"]["key"] == "results%2Fa.json", "URL-encoded, as S3 sends keys"


def test_an_undeliverable_object_event_is_logged(capsys):
    endpoint = Endpoint(failures=0)
    url = endpoint.url
    with mock_aws():
        s3 = bucket_publishing_to(url)
        endpoint.shutdown()
        endpoint.server_close()
        s3.put_object(Bucket="results", Key="results/a.json", Body=b"{}")  # S3 itself succeeds
    logged = capsys.readouterr().err
    assert f"SNS delivery to {url} failed after 4 tries" in logged, logged


# --------------------------------------------------------------- EventBridge


def test_a_rules_queue_target_gets_the_whole_event():
    """moto's body of a target without an input transformer left out the
    event's `account` (webhook-sender reads the event as EventBridge sends
    it). Only the events the pattern matches are sent: a job's end with a
    callback URL."""
    with mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        events = boto3.client("events", region_name=REGION)
        url = sqs.create_queue(QueueName="webhooks")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.create_event_bus(Name="jobs")
        pattern = {"source": ["job-ingestion"], "detail": {"callbackUrl": [{"exists": True}]}}
        events.put_rule(Name="webhooks", EventBusName="jobs", EventPattern=json.dumps(pattern))
        events.put_targets(Rule="webhooks", EventBusName="jobs", Targets=[{"Id": "queue", "Arn": arn}])
        detail = {"jobId": "job-1", "callbackUrl": "https://hooks.example.com/a \"quoted\" path"}
        put = events.put_events(
            Entries=[
                {"EventBusName": "jobs", "Source": "job-ingestion", "DetailType": "Job Completed", "Detail": json.dumps(detail)},
                {"EventBusName": "jobs", "Source": "job-ingestion", "DetailType": "Job Failed", "Detail": json.dumps({"jobId": "job-2"})},
            ]
        )
        [message] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    event = json.loads(message["Body"])
    assert list(event) == ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]
    assert event["id"] == put["Entries"][0]["EventId"]
    assert (event["account"], event["region"], event["detail-type"]) == ("123456789012", REGION, "Job Completed")
    assert event["detail"] == detail


def test_a_message_sent_while_another_is_deleted_is_not_lost(sqs):
    """moto's DeleteMessage rebuilt the queue's message list without the lock
    SendMessage appends under: a message sent meanwhile went into the
    discarded list. The send answered with a message id; no receive ever
    returned it (a job accepted and never processed)."""
    url = sqs.create_queue(QueueName="jobs")["QueueUrl"]
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    [a] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]
    queue = queue_model(url)
    backend = sqs_backends["123456789012"][REGION]
    sender = []

    class SendDuringCopy(list):
        """The message list: while a delete copies it, a send is served."""

        def __getitem__(self, index):
            part = super().__getitem__(index)
            if isinstance(index, slice) and index.start is not None and not sender:  # the copy's tail is taken

                def send():
                    backend.send_message("jobs", "sent during the delete")

                sender.append(threading.Thread(target=send))
                sender[0].start()
                sender[0].join(0.5)  # done now, unless the delete holds the queue's lock
            return part

    queue._messages = SendDuringCopy(queue._messages)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=a["ReceiptHandle"])
    sender[0].join(10)
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]]
    assert sorted(bodies) == ["b", "sent during the delete"]
