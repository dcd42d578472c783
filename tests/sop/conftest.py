import pytest

from tests.sop.builders import make_content


@pytest.fixture
def content(db):
    return make_content()
