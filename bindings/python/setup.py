"""Build of the iadsr pip package (the metadata is in pyproject.toml).

What this adds to a plain setuptools build of iadsr.py:

* the version, read from the repository's include/iadsr.h
  (IADSR_VERSION_MAJOR/MINOR/PATCH, as the Makefile reads it): there is no
  second hand-written number;
* the library: `make shared` runs in the repository root (a no-op when
  lib/ is up to date), then lib/libiadsr.so.<VERSION> is copied into the
  package as iadsr.libs/libiadsr.so.<SOVERSION>, which iadsr.py loads
  when IADSR_LIBRARY is not set.  IADSR_PY_NO_MAKE=1 skips make and only
  copies the library that is already built (the build fails if there is
  none of the header's version).  IADSR_SOURCE_DIR names the repository
  when this directory is not bindings/python of a checkout;
* the wheel tag: the wheel holds a native library, so it is tagged
  py3-none-<platform> (e.g. py3-none-linux_x86_64; the Python code itself
  runs on any Python 3 through ctypes), never py3-none-any.

There is no sdist: the package is built from a checkout of the repository.

SPDX-License-Identifier: MIT
"""

import os
import re
import shutil
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py
from setuptools.dist import Distribution

try:  # setuptools >= 70.1 has its own; older ones use the wheel package's
    from setuptools.command.bdist_wheel import bdist_wheel as _bdist_wheel
except ImportError:
    try:
        from wheel.bdist_wheel import bdist_wheel as _bdist_wheel
    except ImportError:
        _bdist_wheel = None

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.environ.get('IADSR_SOURCE_DIR')
                       or os.path.join(HERE, '..', '..'))
HEADER = os.path.join(ROOT, 'include', 'iadsr.h')
BUNDLE_DIR = 'iadsr.libs'   # iadsr.BUNDLE_DIR


def fail(msg):
    sys.exit('iadsr setup.py: ' + msg)


def library_version():
    """(major, minor, patch) from include/iadsr.h."""
    try:
        with open(HEADER, encoding='utf-8') as fh:
            text = fh.read()
    except OSError as e:
        fail('%s: %s; build the package from a checkout of the libiadsr '
             'repository (or set IADSR_SOURCE_DIR to one)' % (HEADER, e))
    out = []
    for part in ('MAJOR', 'MINOR', 'PATCH'):
        m = re.search(r'^#[ \t]*define[ \t]+IADSR_VERSION_%s[ \t]+(\d+)'
                      % part, text, flags=re.M)
        if not m:
            fail('could not parse IADSR_VERSION_%s from %s' % (part, HEADER))
        out.append(int(m.group(1)))
    return tuple(out)


VERSION_T = library_version()
VERSION = '%d.%d.%d' % VERSION_T
# the Makefile's rule: 0.MINOR before 1.0, MAJOR from 1.0 on
SOVERSION = ('0.%d' % VERSION_T[1]) if VERSION_T[0] == 0 \
    else '%d' % VERSION_T[0]


def built_library():
    """Run make (unless IADSR_PY_NO_MAKE=1) and return the path of the
    library of the header's version."""
    if os.environ.get('IADSR_PY_NO_MAKE', '') in ('', '0'):
        make = os.environ.get('MAKE', 'make')
        cmd = [make, '--no-print-directory', '-C', ROOT, 'shared']
        print('iadsr setup.py: ' + ' '.join(cmd), flush=True)
        try:
            subprocess.check_call(cmd)
        except (OSError, subprocess.CalledProcessError) as e:
            fail('building the library failed (%s); build it with make in '
                 '%s, or set IADSR_PY_NO_MAKE=1 to copy lib/ as it is' %
                 (e, ROOT))
    lib = os.path.join(ROOT, 'lib', 'libiadsr.so.' + VERSION)
    if not os.path.isfile(lib):
        fail('%s not found (run make in %s first)' % (lib, ROOT))
    return os.path.realpath(lib)


class build_py(_build_py):
    """build_py that also puts the library into the build directory."""

    def run(self):
        super().run()
        src = built_library()
        dst_dir = os.path.join(self.build_lib, BUNDLE_DIR)
        if os.path.isdir(dst_dir):
            shutil.rmtree(dst_dir)  # no stale library of another version
        os.makedirs(dst_dir)
        dst = os.path.join(dst_dir, 'libiadsr.so.' + SOVERSION)
        shutil.copyfile(src, dst)
        os.chmod(dst, 0o755)
        print('iadsr setup.py: bundled %s as %s' % (src, dst), flush=True)

    def get_outputs(self, include_bytecode=1):
        return (super().get_outputs(include_bytecode)
                + [os.path.join(self.build_lib, BUNDLE_DIR,
                                'libiadsr.so.' + SOVERSION)])


class BinaryDistribution(Distribution):
    """Carries a native library: installed to platlib, and the wheel's
    root is not purelib."""

    def has_ext_modules(self):
        return True


cmdclass = {'build_py': build_py}

if _bdist_wheel is not None:
    class bdist_wheel(_bdist_wheel):
        """A platform wheel (it carries a native library) for any Python
        3: py3-none-<platform>."""

        def get_tag(self):
            _, _, plat = super().get_tag()
            return 'py3', 'none', plat

    cmdclass['bdist_wheel'] = bdist_wheel

setup(version=VERSION, cmdclass=cmdclass, distclass=BinaryDistribution)
