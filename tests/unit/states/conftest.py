"""State tests run twice, as a real run and with test=True (saltext-vault's style)."""
import pytest


@pytest.fixture(params=[False, True], ids=["run", "test"], autouse=True)
def test_mode(request):
    return request.param
