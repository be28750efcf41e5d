"""`bin/linksync-ctl`: start, stop, restart and status of an instance.

An instance (buildout.cfg makes one) runs its programs as background
processes, in order: the ZEO server, then the linksync server. Each
program has

* a command (``bin/linksync-zeo``, ``bin/linksync-server``),
* the address it answers on once it is ready (HOST:PORT),
* a pid file ``var/run/NAME.pid`` and a log ``var/log/NAME.log`` (its
  standard output and error, appended to).

``start`` starts the programs that are not running, each waiting until its
address answers (the next one needs it) or it exits (then the end of its
log is shown, the programs this start began are stopped again, and the
status is 1). ``stop`` stops them in reverse order (SIGTERM; SIGKILL after
``--timeout`` seconds, which is reported as a failure). ``status`` shows
each program's pid and address, exit status 0 when all run, 1 otherwise.
A pid file whose process is gone (or is another program: pids are reused)
is stale, and removed.

The processes are not supervised (restarted when they die): under
systemd, give each program's command its own unit instead, or let
``status`` drive a monitor.
"""

import argparse
import os
import signal
import socket
import subprocess
import sys
import time

#: Lines of a program's log shown when it fails to start.
LOG_TAIL = 15


class ControlError(Exception):
    """A program could not be started or stopped; the message says why."""


class Program:
    """One program of an instance (see the module docstring)."""

    def __init__(self, name, command, address, var, cwd=None):
        self.name = name
        self.command = [str(c) for c in command]
        self.address = address
        self.host, _, port = address.rpartition(':')
        self.port = int(port)
        self.cwd = cwd or os.path.dirname(os.path.abspath(var))
        self.pidfile = os.path.join(var, 'run', name + '.pid')
        self.logfile = os.path.join(var, 'log', name + '.log')

    # -- what runs ------------------------------------------------------------------

    def pid(self):
        """The pid of the running program, or None (a stale pid file is
        removed)."""
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        if _alive(pid) and self._is_ours(pid):
            return pid
        _remove(self.pidfile)
        return None

    def _is_ours(self, pid):
        try:
            with open('/proc/%d/cmdline' % pid, 'rb') as f:
                cmdline = f.read().decode('utf-8', 'replace').split('\0')
        except OSError:
            return True  # no /proc: trust the pid file
        return set(self.command) <= set(cmdline)

    def answers(self):
        try:
            with socket.create_connection((self.host, self.port), 1):
                return True
        except OSError:
            return False

    # -- starting and stopping ---------------------------------------------------------

    def start(self, timeout=60.0):
        """Start the program and wait until it answers; its pid."""
        os.makedirs(os.path.dirname(self.pidfile), exist_ok=True)
        os.makedirs(os.path.dirname(self.logfile), exist_ok=True)
        if self.answers():
            raise ControlError('%s: %s is in use by another process' % (
                self.name, self.address))
        offset = os.path.getsize(self.logfile) \
            if os.path.exists(self.logfile) else 0
        with open(self.logfile, 'ab') as log:
            try:
                process = subprocess.Popen(
                    self.command, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, cwd=self.cwd,
                    start_new_session=True)
            except OSError as e:
                raise ControlError('%s: cannot run %s: %s' % (
                    self.name, self.command[0], e.strerror)) from None
        with open(self.pidfile, 'w') as f:
            f.write('%d\n' % process.pid)
        deadline = time.monotonic() + timeout
        while not self.answers():
            if process.poll() is not None:
                _remove(self.pidfile)
                raise ControlError('%s exited at once (status %s); the end '
                                   'of %s:\n%s' % (
                                       self.name, process.returncode,
                                       self.logfile, self._tail(offset)))
            if time.monotonic() > deadline:
                self.stop()
                raise ControlError('%s did not answer on %s within %g s; '
                                   'the end of %s:\n%s' % (
                                       self.name, self.address, timeout,
                                       self.logfile, self._tail(offset)))
            time.sleep(0.1)
        return process.pid

    def stop(self, timeout=60.0):
        """Stop the program; True when it was running."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                _remove(self.pidfile)
                raise ControlError('%s (pid %d) did not stop within %g s: '
                                   'killed' % (self.name, pid, timeout))
            time.sleep(0.1)
        _remove(self.pidfile)
        return True

    def _tail(self, offset):
        try:
            with open(self.logfile, 'rb') as f:
                f.seek(offset)
                lines = f.read().decode('utf-8', 'replace').splitlines()
        except OSError:
            return ''
        return '\n'.join(lines[-LOG_TAIL:])


def _alive(pid):
    try:
        # A child of this process (restart, tests) must be reaped first.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError:
        return True


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# -- the commands ------------------------------------------------------------------------

def start(programs, timeout=60.0, out=print):
    started = []
    for program in programs:
        pid = program.pid()
        if pid is not None:
            out('%s: already running (pid %d)' % (program.name, pid))
            continue
        try:
            pid = program.start(timeout)
        except ControlError:
            for done in reversed(started):
                done.stop(timeout)
                out('%s: stopped again' % done.name)
            raise
        started.append(program)
        out('%s: started (pid %d, %s)' % (program.name, pid,
                                          program.address))
    return 0


def stop(programs, timeout=60.0, out=print):
    for program in reversed(programs):
        if program.stop(timeout):
            out('%s: stopped' % program.name)
        else:
            out('%s: not running' % program.name)
    return 0


def status(programs, out=print):
    code = 0
    for program in programs:
        pid = program.pid()
        if pid is None:
            out('%s: stopped' % program.name)
            code = 1
        else:
            out('%s: running (pid %d, %s%s, log %s)' % (
                program.name, pid, program.address,
                '' if program.answers() else ', not answering',
                program.logfile))
    return code


def restart(programs, timeout=60.0, out=print):
    stop(programs, timeout, out)
    return start(programs, timeout, out)


COMMANDS = {'start': start, 'stop': stop, 'status': status,
            'restart': restart}


def main(programs, var, argv=None):
    """The `linksync-ctl` script of an instance.

    `programs` is a list of dicts (name, command, address) in start order,
    `var` the directory of the pid files and logs.
    """
    parser = argparse.ArgumentParser(
        prog='linksync-ctl',
        description='start, stop, restart or show the status of the '
                    'processes of this linksync instance: %s' % ', '.join(
                        p['name'] for p in programs))
    parser.add_argument('command', choices=sorted(COMMANDS))
    parser.add_argument('--timeout', type=float, default=60.0,
                        help='seconds to wait for a program to answer or '
                             'to stop (default: 60)')
    args = parser.parse_args(argv)
    instance = [Program(var=var, **p) for p in programs]
    command = COMMANDS[args.command]
    try:
        if command is status:
            return status(instance)
        return command(instance, args.timeout)
    except ControlError as e:
        print('linksync-ctl: error: %s' % e, file=sys.stderr)
        return 1
