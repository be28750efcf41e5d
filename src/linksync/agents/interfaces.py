"""The interfaces of the SyncManager and its agents."""

from zope.interface import Attribute, Interface


# -- The change track and its agents (linksync.track, linksync.agents) -------

class ISyncManager(Interface):
    """The change track and the agents consuming it (a utility)."""

    granularity = Attribute("Seconds per bucket of the track.")
    closed = Attribute("The last closed bucket: agents read up to it.")

    def bucket(timestamp):
        """The bucket of a time in seconds."""

    def add(timestamp, action):
        """Record an ActionWrapper at `timestamp`; False when excluded."""

    def close(timestamp):
        """Close the buckets before the one of `timestamp`."""

    def query(agent_id, till=None, limit=None):
        """(end, records) the agent has not consumed yet."""

    def advance(agent_id, position):
        """Move the agent's pointer forward to `position`."""

    def register_agent(agent, now=None, start=None):
        """Add an agent; its pointer starts at the open bucket."""

    def remove_agent(agent_id):
        """Remove an agent and its pointer."""

    def get_agent(agent_id):
        """The agent with that id (UnknownAgent when missing)."""

    def agents():
        """All agents, in id order."""

    def reset(agents_only=False, track_only=False):
        """Erase agents, records, or both."""


class ISyncAgent(Interface):
    """A consumer of the change track with its own pointer."""

    id = Attribute("The agent id (its name on the command line).")
    kind = Attribute("The kind of agent (notifier, jsonl, xmlrpc, ...).")
    name = Attribute("A human name.")
    description = Attribute("What the agent is for.")
    update_time = Attribute("Seconds between runs, or None for the "
                            "server's --notify-interval.")


class IPushSyncAgent(ISyncAgent):
    """An agent that sends the reduced changes to its consumer."""

    def run(current_ts, session, context):
        """Read, upload and acknowledge; a Deferred firing with a
        RunResult."""


class IAgentKind(Interface):
    """A kind of agent: the class of its agents (a utility named after
    the kind, registered by the application's composition root)."""

    kind = Attribute("The name of the kind (str).")
    options = Attribute("option name -> (type, help) of its options.")

    def __call__(aid, **options):
        """A new agent of this kind named `aid`, with the ``options``
        of :attr:`options` as keyword arguments."""
