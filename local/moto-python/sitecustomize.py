"""Loaded as sitecustomize (PYTHONPATH) by the moto servers that emulate DynamoDB: jobs-local's and the jobs-aws adapter tests'.

moto's UpdateItem of an item that does not exist yet first stores the bare
key, then applies the update expression to the stored item in place: another
request served meanwhile (moto's server is threaded) reads an item with only
its key, which real DynamoDB never shows. One lock around every item read and
write makes each call atomic, as DynamoDB's are.
"""

import functools
import threading

try:
    from moto.dynamodb.models import DynamoDBBackend
except Exception:  # not a moto with DynamoDB: nothing to fix
    DynamoDBBackend = None

if DynamoDBBackend is not None:
    _lock = threading.RLock()

    def _atomic(method):
        @functools.wraps(method)
        def wrapper(*args, **kwargs):
            with _lock:
                return method(*args, **kwargs)

        return wrapper

    for _name in ("put_item", "get_item", "query", "scan", "update_item", "delete_item", "transact_write_items", "batch_get_item", "transact_get_items"):
        if hasattr(DynamoDBBackend, _name):
            setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

    # The handler serializes the updated item (UpdateItem's ReturnValues)
    # after the backend call returns: the stored item itself, which another
    # request may change meanwhile. The whole request holds the lock (it is
    # re-entrant), so an answer shows its own write only.
    try:
        from moto.dynamodb.responses import DynamoHandler
    except Exception:
        DynamoHandler = None
    if DynamoHandler is not None:
        for _name in ("put_item", "update_item", "delete_item"):
            if hasattr(DynamoHandler, _name):
                setattr(DynamoHandler, _name, _atomic(getattr(DynamoHandler, _name)))
