import pytest

from linksync import testing
from linksync.server.configure import configure


@pytest.fixture(autouse=True, scope='session')
def _configure():
    """The composition root, as every entry point calls it."""
    configure()


@pytest.fixture(autouse=True)
def _cleanup():
    """Stop whatever linksync.testing started during the test."""
    yield
    testing.cleanup()


@pytest.fixture
def server(tmp_path):
    """A started linksync server on a free port, with a test Clock."""
    return testing.ServerFixture(data=str(tmp_path / 'var')).start()


@pytest.fixture
def smtp_server():
    return testing.SMTPServer().start()
