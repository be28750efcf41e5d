"""The web status UI: pages for people, served by the server itself.

Plain HTML and one inline style sheet, no script; readable on a phone (the
tables turn into one card per row on narrow screens).

* :mod:`linksync.server.web.resources`: the Twisted resources and the URLs;
* :mod:`linksync.server.web.access`: who may see which page (the management
  secret, a client's credentials, signed alerts links);
* :mod:`linksync.server.web.overview`, :mod:`linksync.server.web.search`,
  :mod:`linksync.server.web.alerts`: what each page reads and shows;
* :mod:`linksync.server.web.markup`: escaping, the layout and its style;
* :mod:`linksync.server.web.paging`: lists a page at a time.

docs/status.txt shows them at work.
"""
