#!/usr/bin/python3
# check-po.py: every message of the template is translated in every
# language of po/LINGUAS, none fuzzy, and each catalog compiles cleanly
#
# SPDX-License-Identifier: MIT
#
#   check-po.py PO_DIR DOMAIN
#
# First, the template itself: every source file using _() or N_() is in
# POTFILES.in, and xgettext over those files finds no message the committed
# DOMAIN.pot lacks.
#
# Fails when a msgid of PO_DIR/DOMAIN.pot is missing from a LANG.po, or is
# untranslated or fuzzy there (msgcmp ignores both by default, so either
# shows as missing), when msgfmt --check finds a format string that does
# not match its msgid, or when a catalog holds messages the template no
# longer has (regenerate with `meson compile tinysync-1.0-pot` and
# `msgmerge --update`).

import os
import re
import subprocess
import sys
import tempfile


def check_template(po_dir, pot, n):
    """Two TAP lines: POTFILES.in is complete, the .pot is up to date."""
    source_root = os.path.dirname(os.path.abspath(po_dir))
    with open(os.path.join(po_dir, 'POTFILES.in')) as f:
        listed = {line.strip() for line in f
                  if line.strip() and not line.startswith('#')}
    using = set()
    for folder in ('tinysync', 'server'):
        for name in sorted(os.listdir(os.path.join(source_root, folder))):
            if not name.endswith('.c'):
                continue
            path = folder + '/' + name
            with open(os.path.join(source_root, path), encoding='utf-8') as f:
                if re.search(r'\bN?_ ?\("', f.read()):
                    using.add(path)
    missing = sorted(using - listed)
    print('%s %d - POTFILES.in lists every file using _() or N_()%s'
          % ('not ok' if missing else 'ok', n,
             ': missing ' + ', '.join(missing) if missing else ''))

    with tempfile.TemporaryDirectory() as tmp:
        fresh = os.path.join(tmp, 'fresh.pot')
        subprocess.run(['xgettext', '--from-code=UTF-8', '--language=C',
                        '--keyword=_', '--keyword=N_', '--keyword=C_:1c,2',
                        '--keyword=NC_:1c,2', '-D', source_root,
                        '-o', fresh] + sorted(listed), check=True)
        cmp = subprocess.run(['msgcmp', '--use-untranslated', pot, fresh],
                             capture_output=True, text=True)
    print('%s %d - %s is up to date with the sources'
          % ('ok' if cmp.returncode == 0 else 'not ok', n + 1,
             os.path.basename(pot)))
    for line in cmp.stderr.splitlines():
        print('# ' + line)
    if cmp.returncode != 0:
        print('# regenerate: meson compile tinysync-1.0-pot, then msgmerge'
              ' --update po/LANG.po po/tinysync-1.0.pot and translate')
    return int(bool(missing)) + int(cmp.returncode != 0)


def main():
    po_dir, domain = sys.argv[1:3]
    pot = os.path.join(po_dir, domain + '.pot')
    with open(os.path.join(po_dir, 'LINGUAS')) as f:
        languages = [w for line in f for w in line.split('#')[0].split()]
    if not languages:
        print('Bail out! po/LINGUAS lists no language')
        return 1
    template = subprocess.run(['msgfmt', '--statistics', '-o', os.devnull, pot],
                              capture_output=True, text=True)
    total = int(re.search(r'(\d+) untranslated', template.stderr).group(1))
    print('1..%d' % (2 + 3 * len(languages)))
    failed = check_template(po_dir, pot, 1)
    n = 2
    for lang in languages:
        po = os.path.join(po_dir, lang + '.po')

        n += 1
        check = subprocess.run(['msgfmt', '--check', '--statistics',
                                '-o', os.devnull, po],
                               capture_output=True, text=True)
        stats = check.stderr.strip()
        complete = (check.returncode == 0 and
                    re.match(r'(\d+) translated messages?\.$', stats) and
                    int(stats.split()[0]) == total)
        print('%s %d - %s: msgfmt --check: %s (template: %d)'
              % ('ok' if complete else 'not ok', n, lang, stats, total))
        failed += not complete

        n += 1
        cmp = subprocess.run(['msgcmp', po, pot], capture_output=True,
                             text=True)
        print('%s %d - %s: msgcmp against %s.pot'
              % ('ok' if cmp.returncode == 0 else 'not ok', n, lang, domain))
        for line in cmp.stderr.splitlines():
            print('# ' + line)
        failed += cmp.returncode != 0

        n += 1
        obsolete = subprocess.run(['msgattrib', '--only-obsolete', po],
                                  capture_output=True, text=True)
        stale = obsolete.returncode != 0 or 'msgid' in obsolete.stdout
        print('%s %d - %s: no obsolete messages'
              % ('not ok' if stale else 'ok', n, lang))
        failed += stale
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
