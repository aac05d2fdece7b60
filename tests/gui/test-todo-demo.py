#!/usr/bin/python3
# test-todo-demo.py: two windows of examples/todo edit one list through
# tinysync-server, in a real X server (Xvfb)
#
# SPDX-License-Identifier: MIT
#
#   test-todo-demo.py SERVER DEMO ARTIFACT_DIR
#   test-todo-demo.py SERVER DEMO ARTIFACT_DIR --tinybase NODE NPM INTEROP_DIR
#
# Starts tinysync-server on a free port with a temporary data folder, Xvfb on
# a free display and two instances of the demo joined to the same room. The
# demo's --test-commands channel (stdin/stdout) clicks its widgets and reports
# what its list model holds. Instance 1 adds items, instance 2 must show them;
# instance 2 ticks one, instance 1 must see it; instance 1 deletes one,
# instance 2 must lose it. Then the server stops: both windows show it,
# instance 1 edits offline, the server restarts on the same port and data
# folder, and both windows reconnect by themselves and agree. Each instance has its own Xvfb screen; instance
# 2's screen is grabbed with ImageMagick's import into
# ARTIFACT_DIR/todo-instance2.png.
# With --tinybase, a real TinyBase 10.0.1 app (tinybase-todo-client.mjs, run
# by NODE from INTEROP_DIR, where NPM ci installs tinybase) shares the room
# with one window: its setRow shows in the list, the window's add and tick
# reach its store; the window is grabbed to ARTIFACT_DIR/todo-tinybase.png.
# Everything started here is stopped on the way out, pass or fail.

import json
import os
import fcntl
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TIMEOUT = 20.0

processes = []


def log(*args):
    print('#', *args, flush=True)


class Reader:
    """Collects a child's output lines on a thread, so reads can time out."""

    def __init__(self, stream, name):
        self.lines = queue.Queue()
        self.name = name
        thread = threading.Thread(target=self._run, args=(stream,),
                                  daemon=True)
        thread.start()

    def _run(self, stream):
        for line in iter(stream.readline, ''):
            self.lines.put(line.rstrip('\n'))
        self.lines.put(None)

    def expect(self, pattern, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError('%s: no line matching %r in %.0f s'
                                     % (self.name, pattern, timeout))
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError('%s: exited while waiting for %r'
                                     % (self.name, pattern))
            match = re.match(pattern, line)
            if match:
                return match
            log('%s: %s' % (self.name, line))


def start(args, **kwargs):
    process = subprocess.Popen(args, **kwargs)
    processes.append(process)
    return process


def stop_all():
    for process in reversed(processes):
        if process.poll() is None:
            process.terminate()
    for process in reversed(processes):
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Peer:
    """A process answering the line commands of the demo's test channel."""

    def __init__(self, name, args, env, cwd=None):
        self.name = name
        self.process = start(args, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, env=env, cwd=cwd,
                             text=True, bufsize=1)
        self.reader = Reader(self.process.stdout, name)

    def command(self, line, pattern='OK$'):
        self.process.stdin.write(line + '\n')
        self.process.stdin.flush()
        match = self.reader.expect('(%s)|ERROR (.*)$' % pattern)
        if match.group(0).startswith('ERROR'):
            raise AssertionError('%s: %s -> %s' % (self.name, line,
                                                   match.group(0)))
        return match

    def dump(self):
        return json.loads(self.command('dump', 'DUMP (.*)$').group(2))

    def wait_for(self, what, predicate, timeout=TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            state = self.dump()
            if predicate(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError('%s: never %s; last %s'
                                     % (self.name, what, json.dumps(state)))
            time.sleep(0.1)


class Demo(Peer):

    def __init__(self, name, demo, url, env):
        super().__init__(name, ['/usr/bin/python3', demo, '--test-commands',
                                url], env)


def texts(state):
    return [(row['text'], row['done']) for row in state['rows']]


def check_png(path):
    with open(path, 'rb') as f:
        header = f.read(24)
    size = os.path.getsize(path)
    assert header[:8] == b'\x89PNG\r\n\x1a\n', '%s is not a PNG' % path
    width = int.from_bytes(header[16:20], 'big')
    height = int.from_bytes(header[20:24], 'big')
    assert size > 1000 and width > 100 and height > 100, \
        '%s: %d bytes, %dx%d' % (path, size, width, height)
    # A blank or black screen has a handful of colours; text, check boxes
    # and icons, anti-aliased, have hundreds
    colours = int(subprocess.run(['identify', '-format', '%k', path],
                                 capture_output=True, text=True, check=True,
                                 timeout=30).stdout)
    assert colours > 50, '%s: only %d colours' % (path, colours)
    log('%s: %d bytes, %dx%d, %d colours' % (path, size, width, height,
                                             colours))


def start_server(server, port, data_dir):
    """tinysync-server on PORT (0: any), its port from the line it prints."""
    process = start([server, '--host', '127.0.0.1', '--port', port,
                     '--data-dir', data_dir],
                    stdout=subprocess.PIPE, text=True, bufsize=1)
    reader = Reader(process.stdout, 'server')
    return reader.expect(r'Listening on ws://127\.0\.0\.1:(\d+)/$').group(1)


def stop_server():
    """SIGTERM, which saves every room; the server is the first process."""
    server = processes[0]
    server.terminate()
    assert server.wait(timeout=10) == 0
    processes.remove(server)


def start_xvfb():
    """Xvfb on a display it picks itself, told back through a pipe."""
    read_fd, write_fd = os.pipe()
    start(['Xvfb', '-displayfd', str(write_fd), '-screen', '0', '640x480x24',
           '-nolisten', 'tcp'], pass_fds=(write_fd,),
          stderr=subprocess.DEVNULL)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        number = f.readline().strip()
    assert number, 'Xvfb did not start'
    log('X display :' + number)
    return ':' + number


def gui_env(display):
    env = dict(os.environ)
    env.update({
        'DISPLAY': display,
        'GDK_BACKEND': 'x11',
        'GSK_RENDERER': 'cairo',  # no GL in Xvfb
        'NO_AT_BRIDGE': '1',
        'GTK_A11Y': 'none',
    })
    env.pop('WAYLAND_DISPLAY', None)
    return env


def screenshot(display, path):
    """The whole screen of DISPLAY (one window on it) into a PNG file."""
    time.sleep(0.5)  # let GTK paint the last change
    if os.path.exists(path):
        os.unlink(path)
    subprocess.run(['import', '-display', display, '-window', 'root', path],
                   check=True, timeout=30)
    check_png(path)


def npm_installed(interop_dir):
    modules = os.path.join(interop_dir, 'node_modules')
    lock = os.path.join(modules, '.package-lock.json')
    return (os.path.exists(os.path.join(modules, 'tinybase', 'package.json'))
            and os.path.exists(lock)
            and os.path.getmtime(os.path.join(interop_dir, 'package-lock.json'))
            <= os.path.getmtime(lock))


def npm_ci(npm, interop_dir):
    """npm ci once, under the lock the interop suite's scripts take."""
    if npm_installed(interop_dir):
        return True
    fd = os.open(interop_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if npm_installed(interop_dir):
            return True
        return subprocess.run([npm, 'ci', '--silent', '--no-audit',
                               '--no-fund'], cwd=interop_dir,
                              timeout=300).returncode == 0
    finally:
        os.close(fd)


def tinybase(server, demo, artifacts, node, npm, interop_dir):
    """A TinyBase 10.0.1 client and the GTK demo in one room."""
    if not npm_ci(npm, interop_dir):
        print('1..0 # SKIP npm ci failed in %s (offline?)' % interop_dir)
        return 77
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'tinybase-todo-client.mjs')) as f:
        client_source = f.read()
    data_dir = tempfile.mkdtemp(prefix='tinysync-gui-')
    try:
        port = start_server(server, '0', data_dir)
        url = 'ws://127.0.0.1:%s/todos' % port
        display = start_xvfb()
        window = Demo('GTK demo', demo, url, gui_env(display))
        window.wait_for('connected', lambda s: s['state'] == 'connected')

        # ESM resolves tinybase and ws from the current folder with -e
        web = Peer('TinyBase', [node, '--input-type=module', '-e',
                                client_source],
                   dict(os.environ, TODO_URL=url), cwd=interop_dir)
        web.reader.expect('READY$', timeout=60)

        # TinyBase's setRow shows up in the GTK list
        web.command('set 0000000000000-tinybase false Added in TinyBase')
        window.wait_for('showing the TinyBase row', lambda s: texts(s) == [
            ('Added in TinyBase', False)])
        log('the GTK window shows the row TinyBase set')

        # The window adds a row and ticks TinyBase's: TinyBase's store has both
        window.command('add Added in GTK')
        window.command('toggle 0')

        def web_has_both(table):
            rows = sorted((row['text'], row['done']) for row in table.values())
            return rows == [('Added in GTK', False), ('Added in TinyBase', True)]

        deadline = time.monotonic() + TIMEOUT
        while True:
            table = json.loads(web.command('dump', 'DUMP (.*)$').group(2))
            if web_has_both(table):
                break
            assert time.monotonic() < deadline, \
                'TinyBase never got the GTK edits; last %s' % json.dumps(table)
            time.sleep(0.1)
        log('TinyBase has the GTK edits:', json.dumps(table, sort_keys=True))
        window.wait_for('agreeing', lambda s: texts(s) == [
            ('Added in TinyBase', True), ('Added in GTK', False)])

        screenshot(display, os.path.join(artifacts, 'todo-tinybase.png'))
        web.command('quit')
        window.command('quit')
        assert window.process.wait(timeout=10) == 0
        assert web.process.wait(timeout=10) == 0
        print('ok - a TinyBase app and a GTK window edit one list', flush=True)
        return 0
    finally:
        stop_all()
        shutil.rmtree(data_dir, ignore_errors=True)


def main():
    if len(sys.argv) > 4 and sys.argv[4] == '--tinybase':
        return tinybase(*sys.argv[1:4], *sys.argv[5:8])
    server, demo, artifacts = sys.argv[1:4]
    os.makedirs(artifacts, exist_ok=True)
    data_dir = tempfile.mkdtemp(prefix='tinysync-gui-')
    try:
        # The server, on a port the kernel picks
        port = start_server(server, '0', data_dir)
        url = 'ws://127.0.0.1:%s/todos' % port
        log('server at', url)

        # Each instance gets its own Xvfb, so that nothing overlaps instance
        # 2's window (there is no window manager to place them) and a grab of
        # its screen is a picture of that window alone.
        env_one = gui_env(start_xvfb())
        env_two = gui_env(start_xvfb())

        one = Demo('instance 1', demo, url, env_one)
        one.wait_for('connected', lambda s: s['state'] == 'connected')
        two = Demo('instance 2', demo, url, env_two)
        two.wait_for('connected', lambda s: s['state'] == 'connected')

        # Instance 1 adds two items; instance 2 shows them
        one.command('add Buy oat milk')
        one.command('add Water the plants')
        two.wait_for('showing both items', lambda s: texts(s) == [
            ('Buy oat milk', False), ('Water the plants', False)])
        log('instance 2 shows the items added in instance 1')

        # Instance 2 ticks the first; instance 1 sees it done
        two.command('toggle 0')
        one.wait_for('seeing the tick', lambda s: texts(s) == [
            ('Buy oat milk', True), ('Water the plants', False)])
        log('instance 1 sees the tick made in instance 2')

        # Instance 1 deletes the second; instance 2 loses it
        one.command('delete 1')
        one.command('add Call the plumber')
        state = two.wait_for('following the delete and the add',
                             lambda s: texts(s) == [
                                 ('Buy oat milk', True),
                                 ('Call the plumber', False)])
        assert state['state'] == 'connected'
        log('instance 2 follows the delete:', texts(state))

        # The server goes away: both windows say so, and instance 1 goes on
        # editing offline
        stop_server()
        for demo_instance in (one, two):
            demo_instance.wait_for('reconnecting',
                                   lambda s: s['state'] == 'reconnecting')
        log('both windows show the lost connection')
        one.command('add Fix the bike')
        one.command('toggle 1')

        # The server comes back on the same port with the same data folder:
        # both reconnect by themselves and the offline edits reach instance 2
        start_server(server, port, data_dir)
        processes.insert(0, processes.pop())  # the server stays first
        expected = [('Buy oat milk', True), ('Call the plumber', True),
                    ('Fix the bike', False)]
        for demo_instance in (one, two):
            state = demo_instance.wait_for(
                'reconnected with the offline edits',
                lambda s: s['state'] == 'connected' and texts(s) == expected,
                timeout=60)
        log('after the restart both windows show:', texts(state))

        screenshot(env_two['DISPLAY'],
                   os.path.join(artifacts, 'todo-instance2.png'))

        one.command('quit')
        two.command('quit')
        for demo_process in (one.process, two.process):
            assert demo_process.wait(timeout=10) == 0
        print('ok - two windows edit one list', flush=True)
        return 0
    finally:
        stop_all()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == '__main__':
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(1))
    sys.exit(main())
