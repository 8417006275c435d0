import pytest
import requests

from target import Target, outputs_path


@pytest.fixture(scope="session")
def target() -> Target:
    return Target.from_file(outputs_path())


@pytest.fixture
def token(target: Target) -> str:
    # A fresh sign-in per test: ID tokens live 5 minutes (docs/api.md,
    # "Bounds"), shorter than the suite; a session-wide token expired before
    # the fault tests ran (CI of 2026-12-05: their submits got 401).
    return target.id_token()


# Tests that disturb the whole system (fault injection, load) run last, so
# that the others start from a quiet system. The object-counter tests, for
# one, compare cumulative counters with the whole bucket: after the fault
# tests, one run saw the counters 5 objects short with no error logged by the
# function or the bridge (moto swallows its own S3 -> SNS delivery errors;
# not yet explained).
DISRUPTIVE = ("test_code_swap.py", "test_faults.py", "test_load.py")


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: item.path.name in DISRUPTIVE)


@pytest.fixture(scope="session", autouse=True)
def no_call_was_denied_by_iam(target: Target):
    """After the whole run: the local target enforces each function's IAM
    policy from the stack, and no function may have been denied a call (a
    denial means a policy lacks a permission the code needs, which would fail
    the same way on AWS). A deployed stage has no such counter."""
    yield
    url = target.outputs.get("iamDenialsUrl")
    if not url:
        return
    report = requests.get(url, timeout=10).json()
    assert report["total"] == 0, f"IAM denied calls the functions need (add the permissions to the stack): {report['denials']}"
