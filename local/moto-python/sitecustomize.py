"""Loaded as sitecustomize (PYTHONPATH) by the moto servers of the local
target (jobs-local sets JOBS_LOCAL_MOTO_SERVICE to the server's service) and
by the moto server of the Rust adapter tests (no variable: every patch).

Python imports only the first `sitecustomize` on sys.path, and PYTHONPATH puts
this one first. The interpreter may have its own further down: nixpkgs' Python
environments find their packages through theirs (it adds NIX_PYTHONPATH to
sys.path; without it moto_server cannot import flask), Debian's and Ubuntu's
Pythons have one too; jobs-local puts the Cognito server's own
(local/moto-cognito) right after this one. So this file first runs the next
`sitecustomize` on sys.path, then patches each moto module below when moto
imports it (moto may become importable only later, e.g. through a wrapped
script's own paths): tests/build/test_moto_sitecustomize.py.

Each patch below names the moto 5.2.5 code it corrects and the AWS behaviour
it restores; tests: local/moto-python/test_sitecustomize.py (in-process, the
costs and the rollbacks) and the moto tests of functions/jobs-aws
(functions/jobs-aws/tests/moto.rs, through the real SDK), the object
counter's store among them.

All servers
- moto.core.common_models.BaseModel.__new__ appends every model instance
  ever created to its class's `instances_tracked` list, for the
  /moto-api/data.json dashboard, and never removes it: every DynamoDB item
  replaced or copied (UpdateItem deep-copies the old item on each call) and
  every SQS message copied on receive stays in memory. The local target does
  not serve that dashboard, so nothing is tracked.

DynamoDB
- Item calls are atomic: moto's server is threaded, and its UpdateItem of a
  new key stores the bare key first and applies the update expression to the
  stored item in place, so a GetItem served meanwhile saw an item with only
  its key, which DynamoDB never shows. One lock around every item call (the
  same lock for every table: the calls are short, see the next two points).
- A failed write leaves nothing behind (DynamoDBBackend.update_item): moto
  stores the bare key of a new item before it applies the update, and applies
  the SET/REMOVE actions one by one to the stored item, so an update that
  fails on the way (an item over 400 KB: ItemSizeTooLarge) left a partial
  item (a new key with some attributes, or an old item half updated).
  DynamoDB rejects the whole request and changes nothing: the touched item is
  put back as it was.
- Replacing an attribute counts its new value only
  (dynamo_type.LimitedSizeDict.__setitem__ adds the new value's size to the
  item's current size, the old value of the same attribute included): an
  UpdateItem that SETs an attribute of a large item to itself, as the job
  processor's `payload = if_not_exists(payload, :payload)` does on a job
  job-commands recorded at submit, was refused as over 400 KB at half that
  size. DynamoDB limits the item as it is after the update.
- A transaction copies only what it touches
  (DynamoDBBackend.transact_write_items): moto deep-copies every table a
  transaction names, before each transaction, to roll back on failure
  (`original_table_state[table_name] = copy.deepcopy(...)`): the cost of
  every transaction grew with the table (a counters table of 2,000 items:
  ~170 ms, under the lock the job path waits on). Here the transaction runs
  on the live tables, and a failed one (a condition, a validation error) puts
  back each item it named as it was before: all or nothing, as DynamoDB.

SQS
- A message is sent and received without counting the queue
  (SQSBackend.send_message, _validate_message,
  is_message_valid_based_on_retention_period): they read one static queue
  attribute through `Queue.attributes`, which also counts the visible,
  delayed and in-flight messages by scanning the whole queue, three times per
  GetQueueAttributes and per received message (ReceiveMessage of 10 at a
  3,000-message backlog: ~2 s). SQS's own cost does not grow with the
  backlog; here the counts are left out of those reads (0 instead of a scan:
  none of those callers reads them), and GetQueueAttributes counts once.
- Deleting a message does not rebuild the queue twice (Queue.delete_message
  scans the whole queue for the receipt handle, then copies it without the
  message in a Python loop): it stops at the message.
- A message sent while another is deleted is not lost: moto's
  Queue.delete_message replaced the message list with its copy without the
  lock Queue.add_message appends under, so a SendMessage served during the
  copy (a long one at a deep queue) appended to the discarded list. SQS
  answered the send with a message id and never delivered it.

EventBridge (runs in the sqs server)
- A rule's queue target gets the whole event, `account` included
  (moto.events.utils.EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE, the
  body of a target without an input transformer, leaves out the `account`
  its paths map reads): version, id, detail-type, source, account, time,
  region, resources, detail, as EventBridge sends them.

S3 → SNS → http (the bucket notifications; SNS runs in the s3 server)
- A failed delivery is retried, and logged if it still fails (moto POSTs
  once and moto/s3/notifications.py swallows the error): see
  _RetriedDelivery.
"""

import copy
import functools
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading
import time as _time

_SERVICE = os.environ.get("JOBS_LOCAL_MOTO_SERVICE", "")
_ABSENT = object()


def _patches(service):
    """Whether this server gets the patches of `service`."""
    return _SERVICE in ("", service)


def _run_next_sitecustomize():
    """Runs the `sitecustomize` this one shadows, if there is one."""
    here = os.path.dirname(os.path.realpath(__file__))

    def is_here(entry):
        try:
            return os.path.realpath(entry or os.getcwd()) == here
        except OSError:
            return False

    own = [i for i, entry in enumerate(sys.path) if is_here(entry)]
    later = sys.path[own[-1] + 1:] if own else sys.path
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", [e for e in later if not is_here(e)])
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # as Python's site does for its own sitecustomize
        print(f"Error in sitecustomize {spec.origin} (run by {__file__}): {e!r}", file=sys.stderr)
    return module


# ----------------------------------------------------------------- all servers


def _patch_common_models(module):
    BaseModel = module.BaseModel
    if getattr(BaseModel, "_jobs_untracked", False):
        return

    def _untracked_new(cls, *args, **kwargs):
        return super(BaseModel, cls).__new__(cls)

    BaseModel.__new__ = staticmethod(_untracked_new)
    BaseModel._jobs_untracked = True


# -------------------------------------------------------------------- DynamoDB

_lock = threading.RLock()


def _atomic(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return wrapper


def _make_atomic(cls, methods):
    for name in methods:
        if hasattr(cls, name):
            setattr(cls, name, _atomic(getattr(cls, name)))
    cls._jobs_atomic = True


# Every item read and write of the backend holds the lock.
_BACKEND_METHODS = ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items", "batch_get_item", "transact_get_items")
# The handler serializes the updated item (UpdateItem's ReturnValues) after
# the backend call returns: the stored item itself, which another request may
# change meanwhile. The whole request holds the lock (it is re-entrant), so an
# answer shows its own write only.
_HANDLER_METHODS = ("put_item", "update_item", "delete_item")


def _patch_dynamodb_models(_ddb_models):
    DynamoDBBackend = getattr(_ddb_models, "DynamoDBBackend", None)
    if DynamoDBBackend is None:
        print(f"sitecustomize: {_ddb_models.__name__} has no DynamoDBBackend: moto's DynamoDB calls are NOT atomic", file=sys.stderr)
        return
    if getattr(DynamoDBBackend, "_jobs_atomic", False):
        return
    from moto.dynamodb.models import dynamo_type
    from moto.dynamodb.models.dynamo_type import DynamoType

    _original_setitem = dynamo_type.LimitedSizeDict.__setitem__

    @functools.wraps(_original_setitem)
    def _setitem(self, key, value):
        # Checked without the value being replaced, then stored as moto stores it.
        old = dict.pop(self, key, _ABSENT)
        try:
            _original_setitem(self, key, value)
        except BaseException:
            if old is not _ABSENT:
                dict.__setitem__(self, key, old)
            raise

    dynamo_type.LimitedSizeDict.__setitem__ = _setitem

    def _key_of(table, key):
        """The (hash, range) of an item key, as moto's tables index it."""
        hash_value = DynamoType(key[table.hash_key_attr])
        range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        return hash_value, range_value

    class _Snapshot:
        """Items as they were before a write, to put back if it fails."""

        def __init__(self):
            self.saved = []

        def save(self, table, hash_value, range_value):
            item = table.get_item(hash_value, range_value)
            stream = len(table.stream_shard.items) if table.stream_shard is not None else None
            self.saved.append((table, hash_value, range_value, copy.deepcopy(item), stream))

        def restore(self):
            for table, hash_value, range_value, item, stream in reversed(self.saved):
                if range_value is not None:
                    if item is None:
                        table.items.get(hash_value, {}).pop(range_value, None)
                    else:
                        table.items[hash_value][range_value] = item
                elif item is None:
                    table.items.pop(hash_value, None)
                else:
                    table.items[hash_value] = item
                if stream is not None and table.stream_shard is not None:
                    del table.stream_shard.items[stream:]

    _original_update_item = DynamoDBBackend.update_item

    @functools.wraps(_original_update_item)
    def _update_item(self, table_name, key, *args, **kwargs):
        snapshot = _Snapshot()
        try:
            table = self.get_table(table_name)
            snapshot.save(table, *_key_of(table, key))
        except Exception:
            pass  # moto reports the bad table or key itself
        try:
            return _original_update_item(self, table_name, key, *args, **kwargs)
        except BaseException:
            snapshot.restore()
            raise

    DynamoDBBackend.update_item = _update_item

    # moto.dynamodb.models calls `copy.deepcopy(table)` for its table-wide
    # backup; while a transaction runs that copy is the table itself (the
    # items it touches are saved instead).
    _in_transaction = threading.local()

    class _CopyWithoutTableBackups:
        def __getattr__(self, name):
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value, memo=None):
            if getattr(_in_transaction, "active", False) and isinstance(value, _ddb_models.Table):
                return value
            return copy.deepcopy(value, memo)

    _ddb_models.copy = _CopyWithoutTableBackups()

    _original_transact_write_items = DynamoDBBackend.transact_write_items

    @functools.wraps(_original_transact_write_items)
    def _transact_write_items(self, transact_items):
        snapshot = _Snapshot()
        for entry in transact_items[:100]:
            try:
                op_type, op = next(iter(entry.items()))
                table = self.get_table(op["TableName"])
                snapshot.save(table, *_key_of(table, op["Item"] if op_type == "Put" else op["Key"]))
            except Exception:
                continue  # moto reports the malformed operation itself
        _in_transaction.active = True
        try:
            return _original_transact_write_items(self, transact_items)
        except BaseException:
            snapshot.restore()
            raise
        finally:
            _in_transaction.active = False

    DynamoDBBackend.transact_write_items = _transact_write_items

    _make_atomic(DynamoDBBackend, _BACKEND_METHODS)


def _patch_dynamodb_responses(module):
    DynamoHandler = getattr(module, "DynamoHandler", None)
    if DynamoHandler is None:
        print(f"sitecustomize: {module.__name__} has no DynamoHandler: moto's DynamoDB answers are NOT atomic", file=sys.stderr)
        return
    if not getattr(DynamoHandler, "_jobs_atomic", False):
        _make_atomic(DynamoHandler, _HANDLER_METHODS)


# ------------------------------------------------------------------------- SQS


def _patch_sqs_models(module):
    Queue, SQSBackend = module.Queue, module.SQSBackend
    if getattr(SQSBackend, "_jobs_patched", False):
        return
    SQSBackend._jobs_patched = True
    from moto.core.utils import unix_time, unix_time_millis
    from moto.sqs.exceptions import InvalidAttributeName, ReceiptHandleIsInvalid

    _without_counts = threading.local()
    _receiving = threading.local()

    def _visible_now(queue):
        """The queue's visible messages, lazily, in order (moto's `Queue.messages`
        reads the clock twice per message; once is enough)."""
        now = unix_time_millis()
        return (m for m in queue._messages if now > m.visible_at and now >= m.delayed_until)

    def _messages(self):
        if getattr(_receiving, "active", False):
            return _visible_now(self)  # ReceiveMessage stops at the batch it takes
        return list(_visible_now(self))

    Queue.messages = property(_messages)

    def _counted(predicate):
        def count(self):
            if getattr(_without_counts, "depth", 0):
                return 0  # the caller reads no count (see the docstring)
            now = unix_time_millis()
            return sum(1 for m in self._messages if predicate(m, now))

        return property(count)

    Queue.approximate_number_of_messages = _counted(lambda m, now: now > m.visible_at and now >= m.delayed_until)
    Queue.approximate_number_of_messages_delayed = _counted(lambda m, now: now < m.delayed_until)
    Queue.approximate_number_of_messages_not_visible = _counted(lambda m, now: not now > m.visible_at)

    def _counts_unread(method):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            _without_counts.depth = getattr(_without_counts, "depth", 0) + 1
            try:
                return method(*args, **kwargs)
            finally:
                _without_counts.depth -= 1

        return wrapper

    # They read ContentBasedDeduplication through `queue.attributes`, nothing else.
    SQSBackend.send_message = _counts_unread(SQSBackend.send_message)
    SQSBackend._validate_message = _counts_unread(SQSBackend._validate_message)

    def _is_message_valid_based_on_retention_period(self, queue_name, message):
        queue = self.get_queue(queue_name)
        return int(queue.message_retention_period) + message.sent_timestamp / 1000 > unix_time()

    SQSBackend.is_message_valid_based_on_retention_period = _is_message_valid_based_on_retention_period

    _original_receive_message = SQSBackend.receive_message

    @functools.wraps(_original_receive_message)
    def _receive_message(self, *args, **kwargs):
        _receiving.active = True
        try:
            return _original_receive_message(self, *args, **kwargs)
        finally:
            _receiving.active = False

    SQSBackend.receive_message = _receive_message

    def _wait_for_messages(self, timeout):
        with self._messages_lock:
            self._messages_lock.wait_for(lambda: next(_visible_now(self), None) is not None, timeout=timeout)

    Queue.wait_for_messages = _wait_for_messages

    def _get_queue_attributes(self, queue_name, attribute_names):
        queue = self.get_queue(queue_name)
        if not attribute_names:
            return {}
        valid_names = ["All"] + queue.BASE_ATTRIBUTES + queue.FIFO_ATTRIBUTES + queue.KMS_ATTRIBUTES
        invalid_name = next((name for name in attribute_names if name not in valid_names), None)
        if invalid_name or invalid_name == "":
            raise InvalidAttributeName(invalid_name)
        wanted = set(attribute_names)
        if "All" in wanted or any(name.startswith("ApproximateNumberOfMessages") for name in wanted):
            attributes = queue.attributes  # one count of the queue for the whole answer
        else:
            attributes = _counts_unread(lambda: queue.attributes)()
        if "All" in wanted:
            return attributes
        return {name: attributes[name] for name in attribute_names if attributes.get(name) is not None}

    SQSBackend.get_queue_attributes = _get_queue_attributes

    def _delete_message(self, receipt_handle):
        if receipt_handle in self.deleted_messages:
            return  # already deleted: SQS accepts it again
        # Under the lock SendMessage appends with (Queue.add_message): moto's
        # delete built the new list without it, so a message sent meanwhile
        # went into the old list and was lost (a job accepted, then never
        # received: SendMessage had answered with its id).
        with self._messages_lock:
            messages = self._messages
            for i, message in enumerate(messages):
                if message.receipt_handle == receipt_handle or receipt_handle in message._old_receipt_handles:
                    self.pending_messages.discard(message)
                    self.deleted_messages.update(message.all_receipt_handles)
                    # A new list, as moto's does: receives iterate the old one.
                    self._messages = messages[:i] + messages[i + 1 :]
                    return
        raise ReceiptHandleIsInvalid()

    Queue.delete_message = _delete_message


# ----------------------------------------------------------------- EventBridge

# EventBridge's event, in its order (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-events-structure.html).
_WHOLE_EVENT_TEMPLATE = (
    '{"version": "0", "id": "<id>", "detail-type": "<detail-type>", "source": "<source>", "account": "<account>", '
    '"time": <time>, "region": "<region>", "resources": <resources>, "detail": <detail>}'
)


def _patch_events_utils(module):
    module.EventTemplateParser.DEFAULT_EVENT_INPUT_TEMPLATE = _WHOLE_EVENT_TEMPLATE


# ---------------------------------------------------------- S3 → SNS → http


def _patch_sns_models(_sns_models):
    if isinstance(_sns_models.requests, _RetriedDelivery):
        return
    _sns_models.requests = _RetriedDelivery(_sns_models.requests)


class _RetriedDelivery:
    """SNS's delivery to an http subscription, retried as SNS retries it.

    moto's Subscription.publish POSTs once, without a timeout, and ignores
    the answer; a delivery that fails (connection refused or reset, a 5xx)
    raises inside the S3 call that published the event, and
    moto/s3/notifications.py `_send_sns_message` swallows every exception
    (`except: pass`): the event is gone without a trace. SNS retries an
    http endpoint (3 immediate tries, then with back-off); here 4 tries
    over ~2 s, and a delivery that still fails is logged on stderr (the
    server's log) with the endpoint and the reason."""

    TRIES = (0.0, 0.1, 0.5, 1.5)

    def __init__(self, requests):
        self._requests = requests

    def __getattr__(self, name):
        return getattr(self._requests, name)

    def post(self, url, *args, **kwargs):
        kwargs.setdefault("timeout", 10)
        last = None
        for pause in self.TRIES:
            _time.sleep(pause)
            try:
                response = self._requests.post(url, *args, **kwargs)
                if response.status_code < 500:
                    return response
                last = f"HTTP {response.status_code}"
            except self._requests.RequestException as e:
                last = f"{type(e).__name__}: {e}"
        print(f"jobs-local moto patch: SNS delivery to {url} failed after {len(self.TRIES)} tries: {last}", file=sys.stderr, flush=True)
        raise RuntimeError(f"SNS delivery to {url} failed: {last}")


_PATCHES = {"moto.core.common_models": _patch_common_models}
if _patches("dynamodb"):
    _PATCHES["moto.dynamodb.models"] = _patch_dynamodb_models
    _PATCHES["moto.dynamodb.responses"] = _patch_dynamodb_responses
if _patches("sqs"):
    _PATCHES["moto.sqs.models"] = _patch_sqs_models
    _PATCHES["moto.events.utils"] = _patch_events_utils
if _patches("s3") or _patches("sns"):
    _PATCHES["moto.sns.models"] = _patch_sns_models


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a module of _PATCHES right after it is first imported."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _PATCHES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _PATCHES[fullname](module)

        loader.exec_module = exec_and_patch
        return spec


_next_sitecustomize = _run_next_sitecustomize()
for _name, _apply in _PATCHES.items():
    if _name in sys.modules:  # imported by the sitecustomize run above
        _apply(sys.modules[_name])
sys.meta_path.insert(0, _PatchOnImport())
