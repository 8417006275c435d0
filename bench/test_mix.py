"""The emulator-bound limit is only a limit of this system if the bench's mix
sends the requests the system sends: the processor's two UpdateItem calls
(functions/jobs-aws/src/dynamodb.rs) and the API's SendMessage
(cdktf/constructs/job-api.ts). moto parses every expression in Python, so a
simpler write is a cheaper one (the mix's earlier, shorter writes cost ~35 %
less of moto's CPU per job and overstated the limit)."""

import json
import re
from pathlib import Path
from urllib.parse import parse_qs

import bench

ROOT = Path(__file__).resolve().parent.parent
DYNAMODB_RS = (ROOT / "functions" / "jobs-aws" / "src" / "dynamodb.rs").read_text()
JOB_API_TS = (ROOT / "cdktf" / "constructs" / "job-api.ts").read_text()
ATTR = dict(re.findall(r'pub const (\w+): &str = "([^"]+)";', DYNAMODB_RS.split("pub mod attr {")[1].split("}")[0]))
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
        update = update.replace("{set_owner}", re.search(r'let set_owner = if [^{]+\{ "([^"]+)"', body).group(1))
    # The bench's jobs carry no callback URL: `set_callback` adds nothing to their writes.
    assert "fn set_callback(" in DYNAMODB_RS and 'let Some(callback) = &sub.callback else { return (request, String::new()) };' in DYNAMODB_RS
    update = update.replace("{set_callback}", "")
    condition = re.search(r'\.condition_expression\((?:format!\()?"([^"]+)"\)', body).group(1)
    condition = re.sub(r"\{(\w+)\}", lambda m: FRAGMENTS[m.group(1)], condition)
    names = {n: ATTR[a] for n, a in re.findall(r'\.expression_attribute_names\("(#\w+)", attr::(\w+)\)', body)}
    # Bound for every write that leaves a closed job alone (`closed_statuses`).
    if "closed_statuses(" in body:
        names["#status"] = ATTR["STATUS"]
    return {"update": update, "condition": condition, "names": names}


class Recorder(bench.RawAws):
    def __init__(self):
        self.ids = {"queue": "http://127.0.0.1:1/123456789012/jobs", "table": "t", "owner": "0b1c-owner",
                    "bucket": "results", "simulator": "sim", "bus": "jobs-bus"}
        self.calls = []

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


def test_the_mix_sends_what_the_apis_sqs_integration_sends():
    rec = Recorder()
    rec.send()
    call = rec.calls[0]
    assert call["path"] == "/123456789012/jobs"
    assert call["ctype"] == "application/x-www-form-urlencoded"
    sent = parse_qs(call["body"])
    # The template's parameters, in the template's order of names.
    template = re.search(r'SUBMIT_JOB_REQUEST_TEMPLATE =\s*((?:"[^"]*"|`[^`]*`|\s|\+|\w+)+);', JOB_API_TS).group(1)
    # The callback URL's attribute is only sent with the header, which the bench does not send.
    assert template.rstrip().endswith("CALLBACK_URL_ATTRIBUTE_TEMPLATE")
    callback = re.search(r'CALLBACK_URL_ATTRIBUTE_TEMPLATE =\s*((?:"[^"]*"|`[^`]*`|\s|\+)+);', JOB_API_TS).group(1)
    assert callback.strip().startswith("`#if($input.params('${CALLBACK_URL_HEADER}') != \"\")`")
    template = template.replace("CALLBACK_URL_ATTRIBUTE_TEMPLATE", "")
    names = [n.replace("${OWNER_MESSAGE_ATTRIBUTE}", "owner") for n in re.findall(r"[&\"`]([A-Za-z.0-9]+)=", template)]
    assert list(sent) == names
    assert sent["Action"] == ["SendMessage"]
    assert sent["MessageAttribute.1.Name"] == ["owner"]
    assert sent["MessageAttribute.1.Value.StringValue"] == ["0b1c-owner"]


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
