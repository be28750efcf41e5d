"""The web status UI: pages for people, served by the server itself.

Plain HTML and one inline style sheet, no script; readable on a phone (the
tables turn into one card per row on narrow screens).

* :mod:`linksync.pages.resources`: the Twisted resources and the URLs;
* :mod:`linksync.pages.access`: who may see which page (the management
  secret, a client's credentials, signed alerts links);
* :mod:`linksync.pages.overview`, :mod:`linksync.pages.search`,
  :mod:`linksync.pages.alerts`: what each page reads and shows;
* :mod:`linksync.pages.markup`: escaping, the layout and its style;
* :mod:`linksync.pages.paging`: lists a page at a time.

docs/status.txt shows them at work.
"""
