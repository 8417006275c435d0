import pytest

from target import Target, outputs_path


@pytest.fixture(scope="session")
def target() -> Target:
    return Target.from_file(outputs_path())


@pytest.fixture(scope="session")
def token(target: Target) -> str:
    return target.id_token()
