"""Loaded as sitecustomize (PYTHONPATH) by the moto servers that emulate DynamoDB: jobs-local's and the moto-harness tests'.

moto's UpdateItem of an item that does not exist yet first stores the bare
key, then applies the update expression to the stored item in place: another
request served meanwhile (moto's server is threaded) reads an item with only
its key, which real DynamoDB never shows. One lock around every item read and
write makes each call atomic, as DynamoDB's are.

Python imports only the first `sitecustomize` on sys.path, and PYTHONPATH puts
this one first. The interpreter may have its own further down: nixpkgs' Python
environments find their packages through theirs (it adds NIX_PYTHONPATH to
sys.path; without it moto_server cannot import flask), Debian's and Ubuntu's
Pythons have one too. So this file first runs the next `sitecustomize` on
sys.path, then patches moto's DynamoDB classes when moto imports them (moto
may become importable only later, e.g. through a wrapped script's own paths).
"""

import functools
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading


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


_next_sitecustomize = _run_next_sitecustomize()

_lock = threading.RLock()


def _atomic(method):
    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with _lock:
            return method(*args, **kwargs)

    return wrapper


def _patch(module, class_name, methods):
    cls = getattr(module, class_name, None)
    if cls is None:
        print(f"sitecustomize: {module.__name__} has no {class_name}: moto's DynamoDB calls are NOT atomic", file=sys.stderr)
        return
    if getattr(cls, "_jobs_atomic", False):
        return
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

_PATCHES = {
    "moto.dynamodb.models": lambda m: _patch(m, "DynamoDBBackend", _BACKEND_METHODS),
    "moto.dynamodb.responses": lambda m: _patch(m, "DynamoHandler", _HANDLER_METHODS),
}


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


for _name, _apply in _PATCHES.items():
    if _name in sys.modules:  # imported by the sitecustomize run above
        _apply(sys.modules[_name])
sys.meta_path.insert(0, _PatchOnImport())
