import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linksync import urlnorm
from linksync.urlnorm import InvalidURL, is_valid, normalize, normalize_many


@pytest.mark.parametrize('given, expected', [
    ('http://example.com/a', 'http://example.com/a'),
    ('HTTP://EXAMPLE.COM/Path', 'http://example.com/Path'),
    ('http://example.com:80/', 'http://example.com/'),
    ('https://example.com:443/x', 'https://example.com/x'),
    ('https://example.com:8443/x', 'https://example.com:8443/x'),
    ('http://example.com:/x', 'http://example.com/x'),
    ('ftp://ftp.example.com:21/pub', 'ftp://ftp.example.com/pub'),
    ('http://example.com', 'http://example.com/'),
    ('http://example.com?q=1', 'http://example.com/?q=1'),
    ('http://example.com/a#frag', 'http://example.com/a'),
    ('http://example.com/a?b=%2f#frag', 'http://example.com/a?b=%2F'),
    ('  http://example.com/a \n', 'http://example.com/a'),
    ('http://User:Pw@Example.com/', 'http://User:Pw@example.com/'),
    ('http://[2001:DB8::1]:80/', 'http://[2001:db8::1]/'),
    ('http://[2001:db8::1]:8080/', 'http://[2001:db8::1]:8080/'),
    ('MAILTO:joe@example.com', 'mailto:joe@example.com'),
    ('news:comp.lang.python', 'news:comp.lang.python'),
    ('http://xn--bcher-kva.example/', 'http://xn--bcher-kva.example/'),
    # Dot segments go, as a browser removes them before it asks.
    ('http://example.com/a/../b', 'http://example.com/b'),
    ('http://example.com/a/./b/.', 'http://example.com/a/b/'),
    ('http://example.com/../../x', 'http://example.com/x'),
    ('http://example.com/a/b/..', 'http://example.com/a/'),
    ('http://example.com/a/..?q=/../', 'http://example.com/?q=/../'),
    ('http://example.com/.well-known/x', 'http://example.com/.well-known/x'),
    ('http://example.com/a..b/.c', 'http://example.com/a..b/.c'),
    ('ftp://example.com/pub/../etc', 'ftp://example.com/etc'),
    ('file:///tmp/../etc', 'file:///etc'),
])
def test_normalize(given, expected):
    assert normalize(given) == expected
    # Normalising is idempotent.
    assert normalize(expected) == expected


@pytest.mark.parametrize('bad, why', [
    ('', 'empty'),
    ('   ', 'empty'),
    ('example.com/a', 'no scheme'),
    ('/relative/path', 'no scheme'),
    ('1http://x/', 'no scheme'),
    ('http://exa mple.com/', 'white space'),
    ('http://example.com/a\tb', 'white space'),
    ('http://example.com/\x00', 'white space or control'),
    ('http://b\u00fccher.example/', 'not ASCII'),
    ('http://example.com:99999/', 'bad port'),
    ('http://example.com:0/', 'bad port'),
    ('http://example.com:8o/', 'bad port'),
    ('http://[::1/', 'unterminated IPv6'),
    ('http://[not-v6]/', 'bad IPv6'),
    ('http://exa<mple.com/', 'bad host'),
    ('http:///x', 'no host'),
    ('https://:8080/', 'no host'),
    ('ftp:///pub/', 'no host'),
    ('http://user@/', 'no host'),
    ('http://' + 'a' * 9000, 'longer than'),
    (None, 'not a string'),
    (42, 'not a string'),
])
def test_invalid(bad, why):
    with pytest.raises(InvalidURL, match=why):
        normalize(bad)
    assert not is_valid(bad)


def test_normalize_many_groups_spellings_and_skips_invalid():
    result = normalize_many([
        'http://a.example/#1', 'HTTP://A.EXAMPLE/', 'not a url',
        'http://a.example/#1', 'http://b.example/', 17])
    assert result == {
        'http://a.example/': ['http://a.example/#1', 'HTTP://A.EXAMPLE/'],
        'http://b.example/': ['http://b.example/'],
    }


# -- the fast path for URLs already in normal form ----------------------------

URLISH = st.builds(
    ''.join,
    st.lists(st.sampled_from(
        ['http', 'https', 'HTTP', 'ftp', ':', '//', '/', 'a', 'Z', '.', '-',
         '%', '2f', '2F', 'zz', '@', '#', '?', '=', '&', ' ', '~', ':80',
         ':443', ':8080', '[::1]', '\u00e4', '\t', '"', '<', "'", '+']),
        max_size=14))


@settings(max_examples=3000, deadline=None)
@given(st.one_of(URLISH, st.builds(lambda a, b: 'http://' + a + '/' + b,
                                   URLISH, URLISH)))
def test_the_fast_path_agrees_with_the_general_rules(text):
    try:
        expected = urlnorm._normalize(text)
    except urlnorm.InvalidURL:
        expected = urlnorm.InvalidURL
    try:
        got = normalize(text)
    except urlnorm.InvalidURL:
        got = urlnorm.InvalidURL
    assert got == expected
    if urlnorm._is_normal(text):
        assert got == text


def test_typical_urls_take_the_fast_path():
    for url in ('http://example.com/', 'https://www.example.org/a/b?x=1&y=%2F',
                'http://10.0.0.1/~joe/index.html'):
        assert urlnorm._is_normal(url) and normalize(url) == url


@pytest.mark.parametrize('text, expected', [
    ('http://example.com/café', 'http://example.com/caf%C3%A9'),
    ('http://BÜCHER.example/', 'http://xn--bcher-kva.example/'),
    ('http://example.com/a b?c d', 'http://example.com/a%20b?c%20d'),
    ('http://example.com/x/../y', 'http://example.com/y'),
    ('  http://example.com/ok  ', 'http://example.com/ok'),
    ('http://user:pässword@example.com/', 'http://user:p%C3%A4ssword@example.com/'),
])
def test_text_becomes_the_url_a_browser_requests(text, expected):
    assert urlnorm.from_text(text) == expected


@pytest.mark.parametrize('text, message', [
    ('http://127.0.0.1:99999/', 'bad port'),
    ('http:///x', 'no host'),
    ('http://exa mple.com/', 'white space'),
    ('no scheme here', 'no scheme'),
    ('http://\u2028bad\u0000.example/', 'bad host name'),
])
def test_text_that_is_no_url_even_for_a_browser(text, message):
    with pytest.raises(urlnorm.InvalidURL, match=message):
        urlnorm.from_text(text)
