#!/usr/bin/python3
# test-server-help.py: tinysync-server --help in German
#
# SPDX-License-Identifier: MIT
#
#   test-server-help.py SERVER
#
# SERVER is a build of server/tinysync-server.c whose LOCALEDIR is the build
# tree's po folder (tests/i18n/meson.build), so the catalog compiled from
# po/de.po is the one it binds. LANGUAGE=de in the C.UTF-8 locale, present
# on every machine, selects it.

import os
import subprocess
import sys

EXPECTED = [
    # the summary, and options with their argument names
    'Stellt TinyBase-kompatible Synchronisationsräume über WebSockets bereit'
    ' und bewahrt ihre Daten auf.',
    '--port=PORT',
    'Port, auf dem gelauscht wird, 0 für einen beliebigen freien Port'
    ' (Vorgabe 8047)',
    '--data-dir=ORDNER',
    '--tls-cert=DATEI',
    'Die Version ausgeben und beenden',
]


def run(server, language):
    env = dict(os.environ, LANGUAGE=language, LC_ALL='C.UTF-8')
    env.pop('LANG', None)
    return subprocess.run([server, '--help'], env=env, capture_output=True,
                          timeout=30, check=True).stdout.decode('utf-8')


def main():
    server = sys.argv[1]
    german = run(server, 'de')
    english = run(server, 'en')
    print('1..%d' % (len(EXPECTED) + 1))
    failed = 0
    for n, text in enumerate(EXPECTED, 1):
        found = text in german
        failed += not found
        print('%s %d - German --help has %r' % ('ok' if found else 'not ok',
                                                 n, text))
    untranslated = 'Port to listen on, 0 for any free port' in english
    failed += not untranslated
    print('%s %d - English --help is untranslated'
          % ('ok' if untranslated else 'not ok', len(EXPECTED) + 1))
    if failed:
        for line in german.splitlines():
            print('# ' + line)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
