"""Tests of the Python ctypes binding (bindings/python/iadsr.py).

Run from the repository root:
  IADSR_LIBRARY=$PWD/lib/libiadsr.so OPENBLAS_NUM_THREADS=1 \
      /usr/bin/python3 -m unittest discover -s tests/python -v
and again with IADSR_PY_NO_NUMPY=1 for the standard-library path.
Standard library only; numpy-specific tests skip without numpy.
"""

import array
import ctypes
import gc
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
# IADSR_TEST_REPO: the repository (include/iadsr.h, bin/iadsr); default: the
# one this file is in.  IADSR_TEST_INSTALLED=1: test the installed iadsr
# (tests/python/check_package.sh), not bindings/python of the repository.
_REPO = os.path.abspath(os.environ.get('IADSR_TEST_REPO')
                        or os.path.join(_HERE, '..', '..'))
_INSTALLED = os.environ.get('IADSR_TEST_INSTALLED', '') not in ('', '0')
_BINDINGS = os.path.join(_REPO, 'bindings', 'python')
if not _INSTALLED:
    sys.path.insert(0, _BINDINGS)

import iadsr  # noqa: E402

np = iadsr.np
needs_numpy = unittest.skipUnless(iadsr.HAVE_NUMPY, 'numpy not used')
N_ITEMS = 60
FAST = dict(learning_rate=0.01, batch_size=64, seed=5)


def make_seqs(n_users=200, n_items=N_ITEMS, seed=1, noise=0.1):
    """Walks item, item+1, ... (mod n_items) with random items inserted:
    a pattern every backbone picks up within two epochs."""
    rng = random.Random(seed)
    seqs = []
    for _ in range(n_users):
        cur = rng.randrange(1, n_items + 1)
        seq = []
        for _ in range(rng.randrange(6, 16)):
            if rng.random() < noise:
                seq.append(rng.randrange(1, n_items + 1))
            seq.append(cur)
            cur = cur % n_items + 1
        seqs.append(seq)
    return seqs


def tolist(x):
    return x.tolist() if hasattr(x, 'tolist') else list(x)


def rows(x, n_rows, width):
    """Rows of a batch output (2-D numpy, or flat array.array)."""
    if np is not None:
        return [x[u].tolist() for u in range(n_rows)]
    return [list(x[u * width:(u + 1) * width]) for u in range(n_rows)]


def addr(x):
    return x.ctypes.data if np is not None and isinstance(x, np.ndarray) \
        else x.buffer_info()[0]


def read(path):
    with open(path, 'rb') as fh:
        return fh.read()


def close_all(values, rel=1e-5, abs_=1e-6):
    return all(math.isclose(a, b, rel_tol=rel, abs_tol=abs_)
               for a, b in values)


def rand_matrix(n_rows, n_cols, seed):
    rng = random.Random(seed)
    data = [[rng.gauss(0, 1) for _ in range(n_cols)] for _ in range(n_rows)]
    if np is not None:
        return np.array(data, dtype=np.float32)
    return data


class TempDirMixin:
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()


# ---------------------------------------------------------------------------

class TestBasics(unittest.TestCase):
    def test_version(self):
        v = iadsr.version_number()
        self.assertEqual(iadsr.version(), '%d.%d.%d' % (
            v // 10000, v // 100 % 100, v % 100))
        self.assertTrue(iadsr._version_ok(v))
        self.assertGreaterEqual(iadsr.format_version(), 102)
        self.assertTrue(iadsr.build_info())

    def test_version_rule(self):
        ok = iadsr._version_ok
        self.assertTrue(ok(300) and ok(305) and ok(400) and ok(9900))
        self.assertFalse(ok(299) or ok(200) or ok(10000) or ok(10300))

    def test_strerror_and_names(self):
        self.assertEqual(iadsr.status_name(iadsr.ERR_FORMAT),
                         'IADSR_ERR_FORMAT')
        self.assertEqual(iadsr.status_name(0), 'IADSR_OK')
        self.assertEqual(iadsr.status_name(-999), 'IADSR_UNKNOWN')
        for st in range(0, -15, -1):
            self.assertTrue(iadsr.strerror(st))

    def test_struct_sizes_match_init(self):
        sizes = iadsr.struct_sizes()
        self.assertEqual(len(sizes), 5)
        for name, (ours, lib) in sizes.items():
            self.assertEqual(ours, lib, name)
        # no _init for these; sizes from the header's frozen layouts
        self.assertEqual(ctypes.sizeof(iadsr.Metrics), 64)
        self.assertEqual(ctypes.sizeof(iadsr.ProgressInfoStruct), 104)
        self.assertEqual(ctypes.sizeof(iadsr.PipelineResult), 120)

    def test_numpy_switch(self):
        if os.environ.get('IADSR_PY_NO_NUMPY', '') not in ('', '0'):
            self.assertIsNone(iadsr.np)
            self.assertFalse(iadsr.HAVE_NUMPY)

    def test_error_shape(self):
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Model.create(10, dim=0)
        e = cm.exception
        self.assertEqual(e.status, iadsr.ERR_INVALID_ARG)
        self.assertEqual(e.name, 'IADSR_ERR_INVALID_ARG')
        self.assertTrue(e.detail)
        self.assertEqual(str(e), 'iadsr_model_create: IADSR_ERR_INVALID_ARG: '
                         + e.detail)


class TestDistributed(unittest.TestCase):
    """Data-parallel training through a Python collective (ranks as
    threads): 2 ranks of 1 thread take the steps of 1 trainer of 2
    threads, bit for bit; an exception in the collective reaches fit()."""

    def _collective(self, n):
        slots = [None] * n
        bar = threading.Barrier(n)

        def make(r):
            def allreduce(buf):
                slots[r] = buf
                bar.wait()
                if iadsr.HAVE_NUMPY:
                    total = slots[0].copy()
                    for q in range(1, n):
                        total += slots[q]
                else:  # two ranks: a + b, rounded to the buffer's type
                    total = [a + b for a, b in zip(slots[0], slots[1])]
                bar.wait()
                buf[:] = total if iadsr.HAVE_NUMPY else \
                    memoryview(array.array(buf.format, total))
                bar.wait()
            return allreduce
        return make

    def _run(self, n, make, **kw):
        out, errs = [None] * n, [None] * n
        seqs = make_seqs()

        def rank(r):
            try:
                with iadsr.Dataset.from_sequences(seqs) as ds:
                    m = iadsr.Model.create(N_ITEMS, dim=16, max_seq_len=10,
                                           seed=3)
                    tr = iadsr.Trainer(ds, m, allreduce=make(r), rank=r,
                                       n_ranks=n, max_epochs=2,
                                       **dict(FAST, **kw))
                    tr.fit()
                    out[r] = (tr.snapshot().to_bytes(), tr.checksum)
            except BaseException as e:  # noqa: B902
                errs[r] = e
        th = [threading.Thread(target=rank, args=(r,)) for r in range(n)]
        for t in th:
            t.start()
        for t in th:
            t.join(300)
        return out, errs

    def test_two_ranks_equal_two_threads(self):
        with iadsr.Dataset.from_sequences(make_seqs()) as ds:
            m = iadsr.Model.create(N_ITEMS, dim=16, max_seq_len=10, seed=3)
            tr = iadsr.Trainer(ds, m, n_threads=2, max_epochs=2, **FAST)
            tr.fit()
            one = (tr.snapshot().to_bytes(), tr.checksum)
        out, errs = self._run(2, self._collective(2))
        self.assertEqual(errs, [None, None])
        self.assertEqual(out[0], one)
        self.assertEqual(out[1], one)

    def test_collective_exception_reaches_fit(self):
        class Broken(Exception):
            pass

        def make(r):
            def allreduce(buf):
                raise Broken('rank %d' % r)
            return allreduce
        out, errs = self._run(2, make)
        for e in errs:
            self.assertIsInstance(e, Broken)

    def test_arguments(self):
        with iadsr.Dataset.from_sequences(make_seqs()) as ds:
            m = iadsr.Model.create(N_ITEMS, dim=16, max_seq_len=10)
            with self.assertRaises(ValueError):
                iadsr.Trainer(ds, m, rank=1, n_ranks=2)
            with self.assertRaises(TypeError):
                iadsr.Trainer(ds, m, allreduce=3, n_ranks=2)
            with self.assertRaises(iadsr.IadsrError) as cm:
                iadsr.Trainer(ds, m, allreduce=lambda b: None, rank=2,
                              n_ranks=2)
            self.assertEqual(cm.exception.status, iadsr.ERR_INVALID_ARG)


class TestPrototypes(unittest.TestCase):
    """The binding's ctypes prototypes against include/iadsr.h: a function
    whose parameter list changes in the header must change here too."""

    HEADER = os.path.join(_REPO, 'include', 'iadsr.h')

    def header_arity(self):
        import re
        with open(self.HEADER, encoding='utf-8') as f:
            text = f.read()
        text = re.sub(r'/\*.*?\*/', ' ', text, flags=re.S)
        out = {}
        for m in re.finditer(r'IADSR_API[^;(]*?\b(iadsr_\w+)\s*\(([^)]*)\)\s*;',
                             text, flags=re.S):
            params = m.group(2).strip()
            out[m.group(1)] = 0 if params in ('', 'void') else \
                len(params.split(','))
        return out

    def test_every_prototype_matches_the_header(self):
        declared = self.header_arity()
        self.assertGreater(len(declared), 80)
        checked = 0
        for name, proto in iadsr._PROTOS.items():
            self.assertIn(name, declared, name + ' is not in the header')
            self.assertEqual(len(proto) - 1, declared[name],
                             name + ': argument count differs from iadsr.h')
            checked += 1
        self.assertGreater(checked, 80)


class TestLoading(unittest.TestCase):
    def _run(self, code, cwd=None, **env):
        e = dict(os.environ)
        e.pop('IADSR_LIBRARY', None)
        e.update(env)
        if cwd is None:  # the module under test is the one imported
            cwd = tempfile.gettempdir() if _INSTALLED else _BINDINGS
        return subprocess.run(
            [sys.executable, '-c', code], env=e, capture_output=True,
            text=True, timeout=60, cwd=cwd)

    def test_repo_lib_fallback(self):
        r = self._run('import iadsr; print(iadsr.LIBRARY_PATH)')
        self.assertEqual(r.returncode, 0, r.stderr)
        if _INSTALLED:  # the package's own copy
            here = os.path.dirname(os.path.abspath(iadsr.__file__))
            self.assertEqual(os.path.dirname(r.stdout.strip()),
                             os.path.join(here, iadsr.BUNDLE_DIR))
        else:
            self.assertTrue(r.stdout.strip().endswith('lib/libiadsr.so'))

    def test_bundled_library_first(self):
        # the pip package's layout: iadsr.py with iadsr.libs/ beside it is
        # loaded from there, before any other candidate; IADSR_LIBRARY
        # still wins
        with tempfile.TemporaryDirectory() as d:
            with open(iadsr.__file__, 'rb') as fh:
                src = fh.read()
            with open(os.path.join(d, 'iadsr.py'), 'wb') as fh:
                fh.write(src)
            os.mkdir(os.path.join(d, iadsr.BUNDLE_DIR))
            lib = os.path.join(d, iadsr.BUNDLE_DIR, 'libiadsr.so.0.3')
            os.symlink(os.path.realpath(iadsr.LIBRARY_PATH), lib)
            code = 'import iadsr; print(iadsr.__file__, iadsr.LIBRARY_PATH)'
            r = self._run(code, cwd=d)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.split(),
                             [os.path.join(d, 'iadsr.py'), lib])
            r = self._run(code, cwd=d, IADSR_LIBRARY=iadsr.LIBRARY_PATH)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.split()[1], iadsr.LIBRARY_PATH)

    def test_bad_library_path(self):
        r = self._run('import iadsr', IADSR_LIBRARY='/nonexistent/lib.so')
        self.assertNotEqual(r.returncode, 0)
        self.assertIn('ImportError', r.stderr)
        self.assertIn('/nonexistent/lib.so', r.stderr)

    def test_without_numpy_installed(self):
        # numpy made unimportable: the module must fall back on its own
        code = ('import sys; sys.modules["numpy"] = None; import iadsr; '
                'assert not iadsr.HAVE_NUMPY; '
                'm = iadsr.Model.create(5, dim=8); '
                'print(type(m.context().score([1, 2])).__name__)')
        r = self._run(code, IADSR_PY_NO_NUMPY='0')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), 'array')


class TestHandle(unittest.TestCase):
    def test_pins_defer_free(self):
        freed = []
        h = iadsr._Handle(1234, freed.append)
        pin = iadsr._Pin(h)
        h.close()
        self.assertEqual(freed, [])  # a view is alive
        self.assertEqual(h.ptr, 1234)
        del pin
        self.assertEqual(freed, [1234])
        h.close()
        self.assertEqual(freed, [1234])  # idempotent

    def test_del_frees(self):
        freed = []
        h = iadsr._Handle(99, freed.append)
        del h
        gc.collect()
        self.assertEqual(freed, [99])


# ---------------------------------------------------------------------------

class TestDataset(TempDirMixin, unittest.TestCase):
    def test_from_lists(self):
        seqs = make_seqs(50)
        with iadsr.Dataset.from_sequences(seqs) as ds:
            self.assertEqual(ds.n_users, 50)
            self.assertEqual(len(ds), 50)
            self.assertEqual(ds.n_items, max(max(s) for s in seqs))
            self.assertEqual(ds.n_interactions, sum(map(len, seqs)))
            self.assertEqual([tolist(s) for s in ds], seqs)
            self.assertEqual(tolist(ds.user_items(-1)), seqs[-1])
            self.assertEqual(ds.user_id(3), 3)
            csr = ds.to_csr()
            self.assertEqual(tolist(csr.offsets)[-1], ds.n_interactions)
            with self.assertRaises(IndexError):
                ds.user_items(50)
        self.assertTrue(ds.closed)
        ds.close()  # idempotent
        with self.assertRaises(ValueError):
            ds.n_users

    def test_from_text_and_file(self):
        text = '# comment\n7 1 2 3\r\n\n9 3 4\n'
        ds = iadsr.Dataset.from_text(text, n_items=10, name='mem')
        self.assertEqual(ds.n_users, 2)
        self.assertEqual(ds.n_items, 10)
        self.assertEqual([ds.user_id(0), ds.user_id(1)], [7, 9])
        self.assertEqual(tolist(ds.user_items(1)), [3, 4])
        path = os.path.join(self.tmp, 'd.txt')
        with open(path, 'w') as fh:
            fh.write(text)
        ds2 = iadsr.Dataset.load(path)
        self.assertEqual(ds2.to_lists(), ds.to_lists())
        self.assertEqual(ds2.n_items, 4)

    def test_text_errors(self):
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Dataset.from_text(b'1 2 x3\n', name='bad.txt')
        self.assertEqual(cm.exception.name, 'IADSR_ERR_FORMAT')
        self.assertIn('bad.txt:1', cm.exception.detail)
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Dataset.load(os.path.join(self.tmp, 'missing.txt'))
        self.assertEqual(cm.exception.name, 'IADSR_ERR_IO')
        self.assertTrue(cm.exception.detail)

    def test_bad_input(self):
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Dataset.from_sequences([[1, 2], [3, 6]], n_items=5)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_OUT_OF_RANGE')
        self.assertTrue(cm.exception.detail)
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Dataset.from_sequences([[1, 0]])
        self.assertEqual(cm.exception.status, iadsr.ERR_OUT_OF_RANGE)
        # bad offsets are refused by the binding before the library reads
        # anything (tests/python/test_safety.py has the full set)
        with self.assertRaises(ValueError) as cm:
            iadsr.Dataset.from_csr([1, 2, 3], [0, 3, 2])  # decreasing
        self.assertIn('offsets decrease at user 1', str(cm.exception))
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Dataset.from_csr([], [0])  # no user: the library says so
        self.assertEqual(cm.exception.name, 'IADSR_ERR_INVALID_ARG')
        self.assertTrue(cm.exception.detail)
        with self.assertRaises(OverflowError):
            iadsr.Dataset.from_sequences([[1, 2 ** 40]])
        with self.assertRaises(ValueError):
            iadsr.Dataset.from_sequences([[1]], n_items=2 ** 40)

    def test_borrow_is_zero_copy(self):
        seqs = make_seqs(20)
        items = [i for s in seqs for i in s]
        offs = [0]
        for s in seqs:
            offs.append(offs[-1] + len(s))
        if np is not None:
            items, offs = np.array(items, np.int32), np.array(offs, np.int64)
        else:
            items, offs = array.array(iadsr._I32, items), \
                array.array(iadsr._I64, offs)
        base = addr(items)
        ds = iadsr.Dataset.from_csr(items, offs, borrow=True)
        for u in (0, 7, 19):
            p, n = ds._user_items_ptr(u)
            self.assertEqual(p, base + 4 * offs[u])  # the library's pointer
            self.assertEqual(n, len(seqs[u]))
        # copy mode: the library owns another buffer
        ds2 = iadsr.Dataset.from_csr(items, offs)
        self.assertNotEqual(ds2._user_items_ptr(0)[0], base)
        # the borrowed arrays stay alive through the dataset
        del items, offs
        gc.collect()
        self.assertEqual(tolist(ds.user_items(19)), seqs[19])

    @needs_numpy
    def test_numpy_input_conversion(self):
        a = np.arange(1, 6, dtype=np.int32)
        ptr, n, keep, copied = iadsr._i32_input(a)
        self.assertEqual((ptr, n, copied), (a.ctypes.data, 5, False))
        for other in (a.astype(np.int64), a[::2], a.astype('>i4'),
                      [1, 2, 3]):
            ptr, n, keep, copied = iadsr._i32_input(other)
            self.assertTrue(copied)
        with self.assertRaises(TypeError):
            iadsr._i32_input(np.array([1.5, 2.0]))
        ds = iadsr.Dataset.from_csr(np.arange(1, 7, dtype=np.int64),
                                    np.array([0, 2, 6]))
        self.assertEqual(ds.to_lists(), [[1, 2], [3, 4, 5, 6]])


# ---------------------------------------------------------------------------

class TestBackbones(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.seqs = make_seqs(200)
        cls.ds = iadsr.Dataset.from_sequences(cls.seqs, n_items=N_ITEMS)

    def _train(self, backbone, **mp):
        m = iadsr.Model.create(N_ITEMS, backbone=backbone, dim=16,
                               max_seq_len=16, **mp)
        self.assertEqual(m.backbone, backbone)
        t = iadsr.Trainer(self.ds, m, max_epochs=2, **FAST)
        infos = []
        self.assertTrue(t.fit(callback=infos.append))
        self.assertEqual([i.epoch for i in infos], [1, 2])
        self.assertEqual(t.epochs_done, 2)
        losses = [i.loss for i in infos]
        self.assertTrue(all(math.isfinite(x) for x in losses))
        best = t.snapshot()
        met = best.evaluate(self.ds)
        self.assertTrue(losses[1] < losses[0] or
                        infos[-1].valid_ndcg10 > 0, (losses, met))
        self.assertGreater(met['hr10'], 0)
        self.assertEqual(met['n_users'], 200)
        return best

    def test_sasrec(self):
        self._train('sasrec', n_heads=2, pre_ln=True)

    def test_gru4rec(self):
        self._train('gru4rec')

    def test_caser(self):
        m = self._train('caser', caser_window=4, caser_h_filters=4)
        p = m.params()
        self.assertEqual((p['backbone'], p['caser_window']), ('caser', 4))

    def test_bad_params(self):
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Model.create(N_ITEMS, dim=15, n_heads=2)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_INVALID_ARG')
        self.assertTrue(cm.exception.detail)
        with self.assertRaises(ValueError):
            iadsr.Model.create(N_ITEMS, backbone='bert4rec')
        with self.assertRaises(TypeError):
            iadsr.Model.create(N_ITEMS, dimension=16)
        m = iadsr.Model.create(N_ITEMS, dim=16)
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Trainer(self.ds, m, max_epochs=0)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_INVALID_ARG')
        small = iadsr.Model.create(10, dim=16)
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Trainer(self.ds, small)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_DIM_MISMATCH')
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Trainer(self.ds, m, label_smoothing=1.0)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_INVALID_ARG')
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Trainer(self.ds, m, history_penalty=-0.5)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_INVALID_ARG')

    def test_smoothing_and_history_penalty_train(self):
        m = iadsr.Model.create(N_ITEMS, dim=16, max_seq_len=16)
        with iadsr.Trainer(self.ds, m, split='none', max_epochs=2,
                           label_smoothing=0.1, history_penalty=1.0,
                           **FAST) as t:
            l1, l2 = t.run_epoch(), t.run_epoch()
            self.assertTrue(math.isfinite(l1) and l2 < l1)

    def test_run_epoch_and_split_none(self):
        m = iadsr.Model.create(N_ITEMS, dim=16, max_seq_len=16)
        with iadsr.Trainer(self.ds, m, split='none', max_epochs=2,
                           **FAST) as t:
            l1, l2 = t.run_epoch(), t.run_epoch()
            self.assertTrue(math.isfinite(l1) and l2 < l1)
            self.assertEqual(t.epochs_done, 2)

    def test_callback_stop(self):
        m = iadsr.Model.create(N_ITEMS, dim=16, max_seq_len=16)
        t = iadsr.Trainer(self.ds, m, max_epochs=5, **FAST)
        seen = []

        def cb(info):
            seen.append(info)
            return True
        self.assertFalse(t.fit(callback=cb))
        self.assertEqual(t.epochs_done, 1)
        self.assertEqual(seen[0].struct_size,
                         ctypes.sizeof(iadsr.ProgressInfoStruct))
        self.assertEqual(seen[0].max_epochs, 5)
        t.snapshot()  # the best model so far is available

    def test_callback_exception(self):
        m = iadsr.Model.create(N_ITEMS, dim=16, max_seq_len=16)
        t = iadsr.Trainer(self.ds, m, max_epochs=5, **FAST)

        class Boom(Exception):
            pass

        def cb(info):
            raise Boom('epoch %d' % info.epoch)
        with self.assertRaises(Boom) as cm:
            t.fit(callback=cb)
        self.assertEqual(str(cm.exception), 'epoch 1')
        self.assertEqual(t.epochs_done, 1)
        # the trainer is still usable
        self.assertTrue(t.fit(callback=lambda i: i.epoch >= 9))


# ---------------------------------------------------------------------------

class TestItemIds(TempDirMixin, unittest.TestCase):
    """External item ids and the history-repeat record (format 1.4)."""

    def test_ids_round_trip(self):
        m = iadsr.Model.create(5, dim=8, max_seq_len=4, n_layers=1)
        self.assertIsNone(m.item_id(1))
        self.assertEqual(m.item_index('a'), 0)
        self.assertIsNone(m.item_ids)
        self.assertIsNone(m.history_repeats)
        ids = ['a', 'b b', '\u00e9t\u00e9', 'q"\\', b'raw\xff']
        w = m.with_item_ids(ids)
        self.assertIsNone(m.item_id(1))  # m unchanged
        self.assertEqual(w.item_id(2), 'b b')
        self.assertEqual(w.item_id(3), '\u00e9t\u00e9')
        self.assertEqual(w.item_id(5).encode('utf-8', 'surrogateescape'),
                         b'raw\xff')
        self.assertEqual(w.item_index('q"\\'), 4)
        self.assertEqual(w.item_index(b'raw\xff'), 5)
        self.assertEqual(w.item_index(w.item_id(5)), 5)
        self.assertEqual(w.item_index('missing'), 0)
        self.assertIsNone(w.item_id(0))
        self.assertIsNone(w.item_id(6))
        self.assertIsNone(w.item_id(2**40))
        self.assertEqual(len(w.item_ids), 5)
        path = os.path.join(self.tmp, 'ids.iadsr')
        w.save(path, fsync=False)
        for l in (iadsr.Model.load(path), iadsr.Model.from_bytes(w.to_bytes()),
                  iadsr.load_checkpoint(path)[0]):
            self.assertEqual(l.item_ids, w.item_ids)
            self.assertEqual(l.item_index('b b'), 2)
        plain = w.with_item_ids(None)
        self.assertIsNone(plain.item_id(1))
        self.assertEqual(plain.to_bytes(), m.to_bytes())

    def test_ids_refused(self):
        m = iadsr.Model.create(3, dim=8, max_seq_len=4, n_layers=1)
        with self.assertRaises(iadsr.IadsrError) as cm:
            m.with_item_ids(['a', 'b'])
        self.assertEqual(cm.exception.name, 'IADSR_ERR_INVALID_ARG')
        with self.assertRaises(iadsr.IadsrError) as cm:
            m.with_item_ids(['a', 'b', 'a'])
        self.assertIn('ids[2] (item 3) repeats ids[0] (item 1)',
                      cm.exception.detail)
        for bad in ('', 'x\ty', 'x\ny', 'x\ry', 'x' * 1025):
            with self.assertRaises(iadsr.IadsrError):
                m.with_item_ids(['a', 'b', bad])
        with self.assertRaises(ValueError):
            m.with_item_ids(['a', 'b', 'c\0d'])
        with self.assertRaises(TypeError):
            m.with_item_ids(['a', 'b', 3])
        self.assertEqual(m.item_index('a\0'), 0)

    def test_trainer_keeps_ids_and_records_repeats(self):
        base = iadsr.Model.create(12, dim=8, max_seq_len=6, n_layers=1)
        w = base.with_item_ids(['sku-%d' % i for i in range(1, 13)])
        norep = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]] * 4
        rep = [[1, 2, 1, 4, 5, 6], [7, 8, 9, 10, 11, 12]] * 4
        with iadsr.Dataset.from_sequences(norep) as ds:
            t = iadsr.Trainer(ds, w, max_epochs=1, **FAST)
            t.run_epoch()
            s = t.snapshot()
        self.assertFalse(s.history_repeats)
        self.assertIs(s.history_repeats, False)
        self.assertEqual(s.item_id(12), 'sku-12')
        self.assertEqual(s.item_index('sku-3'), 3)
        with iadsr.Dataset.from_sequences(rep) as ds:
            t = iadsr.Trainer(ds, base, max_epochs=1, **FAST)
            t.run_epoch()
            s = t.snapshot()
        self.assertIs(s.history_repeats, True)
        self.assertIsNone(s.item_id(1))
        loaded = iadsr.Model.from_bytes(s.to_bytes())
        self.assertIs(loaded.history_repeats, True)


class TestInference(TempDirMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.seqs = make_seqs(200)
        cls.ds = iadsr.Dataset.from_sequences(cls.seqs, n_items=N_ITEMS)
        m = iadsr.Model.create(N_ITEMS, dim=16, max_seq_len=16)
        t = iadsr.Trainer(cls.ds, m, max_epochs=3, **FAST)
        t.fit()
        cls.model = t.snapshot()
        cls.ctx = iadsr.Context(cls.model)

    def test_score_shape(self):
        s = self.ctx.score(self.seqs[0])
        self.assertEqual(len(s), N_ITEMS + 1)
        self.assertEqual(s[0], -math.inf)
        self.assertTrue(all(math.isfinite(x) for x in tolist(s)[1:]))

    def test_topk_matches_argsort(self):
        for seq in self.seqs[:20]:
            s = tolist(self.ctx.score(seq))
            order = sorted(range(1, N_ITEMS + 1), key=lambda i: -s[i])
            ids, sc = self.ctx.topk(seq, 10)
            self.assertEqual(tolist(ids), order[:10])
            self.assertEqual(tolist(sc), [s[i] for i in order[:10]])
            ids, _ = self.ctx.topk(seq, 10, exclude_history=True)
            self.assertFalse(set(tolist(ids)) & set(seq))
            self.assertEqual(tolist(ids), [i for i in order
                                           if i not in seq][:10])

    def test_reduced_scans_identical(self):
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Context(self.model, fp16_scan=True, int8_scan=True)
        self.assertEqual(cm.exception.status, iadsr.ERR_INVALID_ARG)
        for kw in ({'fp16_scan': True}, {'int8_scan': True}):
            try:
                cq = iadsr.Context(self.model, **kw)
            except iadsr.IadsrError as e:  # no AVX-512: refused, says why
                self.assertEqual(e.status, iadsr.ERR_UNSUPPORTED)
                self.assertIn('AVX-512', e.detail)
                continue
            for seq in self.seqs[:40]:
                for excl in (False, True):
                    a = self.ctx.topk(seq, 10, exclude_history=excl)
                    b = cq.topk(seq, 10, exclude_history=excl)
                    self.assertEqual(tolist(a[0]), tolist(b[0]))
                    self.assertEqual(tolist(a[1]), tolist(b[1]))
            cq.close()

    def test_batch_equals_single(self):
        seqs = self.seqs[:70]  # > max_batch 64: crosses a chunk boundary
        n1 = N_ITEMS + 1
        sb = rows(self.ctx.score_batch(seqs), len(seqs), n1)
        ids_b, sc_b = self.ctx.topk_batch(seqs, 5)
        ids_b, sc_b = rows(ids_b, len(seqs), 5), rows(sc_b, len(seqs), 5)
        for u, seq in enumerate(seqs):
            single = tolist(self.ctx.score(seq))
            self.assertTrue(close_all(zip(sb[u][1:], single[1:])), u)
            ids, sc = self.ctx.topk(seq, 5)
            self.assertEqual(ids_b[u], tolist(ids))
            self.assertTrue(close_all(zip(sc_b[u], tolist(sc))))
        # CSR input gives the same rows
        items, offs = iadsr._build_csr(seqs)
        ids_c, _ = self.ctx.topk_batch(iadsr.CSR(items, offs), 5)
        self.assertEqual(rows(ids_c, len(seqs), 5), ids_b)

    def test_user_vector_matches_score(self):
        # score(seq)[i] == dot(user_vector(seq), E[i]), no bias term
        emb = self.model.item_embeddings(copy=True)
        if np is not None:
            table = emb.tolist()
        else:
            flat, (n_rows, dim) = emb
            table = [list(flat[r * dim:(r + 1) * dim]) for r in range(n_rows)]
        dim = len(table[0])
        self.assertFalse(any(table[0]))  # padding row
        seqs = self.seqs[:70]  # > max_batch 64: crosses a chunk boundary
        hb = rows(self.ctx.user_vector_batch(seqs), len(seqs), dim)
        for u, seq in enumerate(seqs):
            h = tolist(self.ctx.user_vector(seq))
            self.assertEqual(len(h), dim)
            self.assertTrue(close_all(zip(hb[u], h)), u)
            s = tolist(self.ctx.score(seq))
            dots = [math.fsum(a * b for a, b in zip(h, table[i]))
                    for i in range(1, N_ITEMS + 1)]
            self.assertTrue(close_all(zip(dots, s[1:])), u)
        with self.assertRaises(iadsr.IadsrError) as cm:
            self.ctx.user_vector([1, N_ITEMS + 1])
        self.assertEqual(cm.exception.name, 'IADSR_ERR_OUT_OF_RANGE')
        with self.assertRaises(iadsr.IadsrError) as cm:
            self.ctx.user_vector([])
        self.assertEqual(cm.exception.name, 'IADSR_ERR_INVALID_ARG')

    def test_out_reuse(self):
        out = self.ctx.score(self.seqs[1])
        a = addr(out)
        res = self.ctx.score(self.seqs[2], out=out)
        self.assertIs(res, out)
        self.assertEqual(addr(res), a)
        self.assertEqual(tolist(res), tolist(self.ctx.score(self.seqs[2])))

    @needs_numpy
    def test_out_validation_numpy(self):
        n1 = N_ITEMS + 1
        bad = [np.empty(n1, np.float64), np.empty(n1 + 1, np.float32),
               np.empty((1, n1), np.float32), np.empty(2 * n1, np.float32)[::2],
               [0.0] * n1]
        ro = np.empty(n1, np.float32)
        ro.flags.writeable = False
        bad.append(ro)
        for out in bad:
            with self.assertRaises(ValueError):
                self.ctx.score(self.seqs[0], out=out)
        with self.assertRaises(ValueError):
            self.ctx.topk(self.seqs[0], 3, ids_out=np.empty(3, np.int64))
        with self.assertRaises(ValueError):
            self.ctx.score_batch(self.seqs[:2], out=np.empty(n1, np.float32))

    @unittest.skipIf(iadsr.HAVE_NUMPY, 'stdlib path only')
    def test_out_validation_stdlib(self):
        n1 = N_ITEMS + 1
        for out in (array.array('d', bytes(8 * n1)),
                    array.array('f', bytes(4 * (n1 + 1))), [0.0] * n1):
            with self.assertRaises(ValueError):
                self.ctx.score(self.seqs[0], out=out)

    @needs_numpy
    def test_seq_zero_copy(self):
        seq = np.array(self.seqs[3], np.int32)
        ptr, n, keep, copied = iadsr._i32_input(seq)
        self.assertFalse(copied)
        self.assertEqual(ptr, seq.ctypes.data)
        self.assertEqual(self.ctx.score(seq).tolist(),
                         self.ctx.score(self.seqs[3]).tolist())

    def test_score_errors(self):
        for seq, name in (([1, N_ITEMS + 1], 'IADSR_ERR_OUT_OF_RANGE'),
                          ([0], 'IADSR_ERR_OUT_OF_RANGE')):
            with self.assertRaises(iadsr.IadsrError) as cm:
                self.ctx.score(seq)
            self.assertEqual(cm.exception.name, name)
            self.assertTrue(cm.exception.detail)
        with self.assertRaises(iadsr.IadsrError) as cm:
            self.ctx.topk(self.seqs[0], 0)
        self.assertTrue(cm.exception.detail)
        with self.assertRaises(iadsr.IadsrError):
            self.ctx.score([])

    def test_save_load_roundtrip(self):
        ref = [tolist(self.ctx.score(s)) for s in self.seqs[:5]]
        path = os.path.join(self.tmp, 'm.iadsr')
        self.model.save(path, fsync=False)
        b = self.model.to_bytes()
        self.assertEqual(b, self.model.to_bytes())  # deterministic
        with open(path, 'rb') as fh:
            self.assertEqual(fh.read(), b)
        for m in (iadsr.Model.load(path), iadsr.Model.from_bytes(b),
                  iadsr.Model.from_bytes(bytearray(b)),
                  iadsr.Model.from_bytes(memoryview(b))):
            self.assertEqual(m.params(), self.model.params())
            c = m.context()
            self.assertEqual([tolist(c.score(s)) for s in self.seqs[:5]],
                             ref)
        bad = bytearray(b)
        bad[len(bad) // 2] ^= 0xFF
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Model.from_bytes(bytes(bad))
        self.assertIn(cm.exception.name, ('IADSR_ERR_CHECKSUM',
                                          'IADSR_ERR_FORMAT'))
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Model.load(os.path.join(self.tmp, 'nope.iadsr'))
        self.assertEqual(cm.exception.name, 'IADSR_ERR_IO')

    CLI_KEYS = ['users', 'HR@5', 'HR@10', 'HR@20', 'NDCG@5', 'NDCG@10',
                'NDCG@20', 'MRR']

    def _lib_metrics(self, **kw):
        """iadsr_evaluate itself, as evaluate() called it before 0.3."""
        p = iadsr._eval_params(**kw)
        m = iadsr._new_metrics()
        with iadsr._using(self.model, self.ds) as (mp, dp):
            iadsr._call('evaluate', mp, dp, ctypes.byref(p),
                        ctypes.byref(m))
        return m

    def test_evaluate(self):
        m = iadsr.evaluate(self.model, self.ds, target='valid',
                           exclude_history=True, n_threads=2)
        # the CLI's names in the order of `iadsr eval --json`, then the
        # names of earlier versions (aliases)
        self.assertEqual(list(m), self.CLI_KEYS + list(iadsr.METRIC_ALIASES))
        self.assertEqual(set(iadsr.METRIC_ALIASES), {
            'n_users', 'hr5', 'hr10', 'hr20', 'ndcg5', 'ndcg10', 'ndcg20'})
        for alias, name in iadsr.METRIC_ALIASES.items():
            self.assertEqual(m[alias], m[name], alias)
        self.assertEqual(m, self.model.evaluate(self.ds, target='valid',
                                                exclude_history=True))
        self.assertTrue(0 <= m['ndcg10'] <= m['hr10'] <= m['hr20'] <= 1)
        self.assertTrue(0 < m['MRR'] <= 1)

    def test_evaluate_equals_library(self):
        # one ranking pass, and HR/NDCG to the last bit of iadsr_evaluate
        for kw in (dict(target='test'),
                   dict(target='valid', exclude_history=True, n_threads=2)):
            lib = self._lib_metrics(**kw)
            m = self.model.evaluate(self.ds, **kw)
            self.assertEqual(m['users'], lib.n_users)
            for k in (5, 10, 20):
                self.assertEqual(m['HR@%d' % k], getattr(lib, 'hr%d' % k))
                self.assertEqual(m['NDCG@%d' % k],
                                 getattr(lib, 'ndcg%d' % k))
            _, ranks = self.model.evaluate_ranks(self.ds, **kw)
            ranks = tolist(ranks)
            mrr = sum(1.0 / (r + 1) for r in ranks) / len(ranks)
            self.assertAlmostEqual(m['MRR'], mrr, places=12)

    def test_metrics_from_ranks(self):
        r = iadsr.metrics_from_ranks([2, 0, 1, 30])
        self.assertEqual(list(r), self.CLI_KEYS)
        self.assertEqual(r['users'], 4)
        self.assertEqual(r['HR@5'], 0.75)
        self.assertEqual(r['HR@20'], 0.75)
        self.assertAlmostEqual(r['NDCG@5'],
                               (0.5 + 1 + 1 / math.log2(3)) / 4, places=15)
        self.assertAlmostEqual(r['MRR'], (1 / 3 + 1 + 1 / 2 + 1 / 31) / 4,
                               places=15)
        r = iadsr.metrics_from_ranks(array.array(iadsr._I32, [0, 3]), ks=[1, 50])
        self.assertEqual(list(r), ['users', 'HR@1', 'HR@50', 'NDCG@1',
                                   'NDCG@50', 'MRR'])
        self.assertEqual((r['HR@1'], r['HR@50'], r['MRR']),
                         (0.5, 1.0, (1 + 0.25) / 2))
        _, ranks = self.model.evaluate_ranks(self.ds)
        self.assertEqual(
            iadsr.metrics_from_ranks(ranks),
            {k: v for k, v in self.model.evaluate(self.ds).items()
             if k not in iadsr.METRIC_ALIASES})
        self.assertEqual(iadsr.metrics_from_ranks([])['MRR'], 0.0)
        for bad in ([0], [5, 5], [2.5], [True]):
            with self.assertRaises(ValueError):
                iadsr.metrics_from_ranks([1], ks=bad)

    def test_evaluate_keys_and_numbers_of_the_cli(self):
        cli = os.path.join(_REPO, 'bin', 'iadsr')
        if not os.access(cli, os.X_OK):
            self.skipTest('bin/iadsr not built')
        mpath = os.path.join(self.tmp, 'm.iadsr')
        dpath = os.path.join(self.tmp, 'd.txt')
        self.model.save(mpath, fsync=False)
        with open(dpath, 'w') as fh:
            for u, seq in enumerate(self.seqs):
                fh.write('%d %s\n' % (u, ' '.join(map(str, seq))))
        r = subprocess.run([cli, 'eval', '--model', mpath, '--data', dpath,
                            '--json'], capture_output=True, text=True,
                           timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        o = json.loads(r.stdout)
        m = self.model.evaluate(self.ds)
        self.assertEqual([k for k in o if k not in ('split',
                                                    'exclude_history')],
                         [k for k in m if k not in iadsr.METRIC_ALIASES])
        self.assertEqual(o['users'], m['users'])
        for k in self.CLI_KEYS[1:]:
            self.assertEqual(o[k], round(m[k], 6), k)

    def test_evaluate_ranks(self):
        for target in ('test', 'valid'):
            users, ranks = self.model.evaluate_ranks(self.ds, target=target,
                                                     n_threads=2)
            if np is not None:
                self.assertEqual(users.dtype, np.int64)
                self.assertEqual(ranks.dtype, np.int32)
            users, ranks = list(users), list(ranks)
            self.assertEqual((users, ranks), tuple(
                list(x) for x in iadsr.evaluate_ranks(self.model, self.ds,
                                                      target=target)))
            m = self.model.evaluate(self.ds, target=target)
            self.assertEqual(len(users), m['n_users'])
            self.assertEqual(users, sorted(users))
            n = len(ranks)
            for k in (5, 10, 20):
                hr = sum(1.0 for r in ranks if r < k) / n
                nd = sum(1.0 / math.log2(r + 2) for r in ranks if r < k) / n
                self.assertAlmostEqual(hr, m['hr%d' % k], places=12)
                self.assertAlmostEqual(nd, m['ndcg%d' % k], places=12)

    def test_item_embeddings(self):
        m = iadsr.Model.from_bytes(self.model.to_bytes())
        view = m.item_embeddings()
        if np is not None:
            self.assertEqual(view.shape, (N_ITEMS + 1, 16))
            self.assertFalse(view.flags.writeable)
            first = view[5].tolist()
            emb = m.item_embeddings(copy=True)
            emb[0] = 0
        else:
            self.assertEqual(view.shape, (N_ITEMS + 1, 16))
            self.assertTrue(view.readonly)
            first = [view[5, j] for j in range(16)]
            flat, shape = m.item_embeddings(copy=True)
            emb = [list(flat[r * 16:(r + 1) * 16]) for r in range(shape[0])]
        # the view keeps the table valid after close()
        m.close()
        gc.collect()
        again = view[5].tolist() if np is not None else \
            [view[5, j] for j in range(16)]
        self.assertEqual(again, first)
        del view
        gc.collect()
        # warm start from the table: same embeddings, same scores
        m2 = iadsr.Model.from_embeddings(emb, max_seq_len=16)
        e2 = m2.item_embeddings(copy=True)
        e2 = e2[5].tolist() if np is not None else list(e2[0][80:96])
        self.assertEqual(e2, first)

    def test_free_any_order(self):
        m = iadsr.Model.from_bytes(self.model.to_bytes())
        ctx = iadsr.Context(m)
        ref = tolist(self.ctx.score(self.seqs[0]))
        del m
        gc.collect()
        self.assertEqual(tolist(ctx.score(self.seqs[0])), ref)
        # a trainer keeps its dataset (and borrowed arrays) alive
        ds = iadsr.Dataset.from_sequences(self.seqs[:50], n_items=N_ITEMS)
        m = iadsr.Model.create(N_ITEMS, dim=8, max_seq_len=8)
        t = iadsr.Trainer(ds, m, max_epochs=1)
        ds.close()
        m.close()
        del ds, m
        gc.collect()
        t.fit()
        snap = t.snapshot()
        t.close()
        t.close()
        self.assertEqual(snap.n_items, N_ITEMS)
        with self.assertRaises(ValueError):
            t.run_epoch()

    def test_threads(self):
        seqs = self.seqs[:100]
        expected = [tolist(self.ctx.score(s)) for s in seqs]
        results = [None, None]
        errors = []

        def work(slot):
            try:
                with iadsr.Context(self.model) as c:
                    got = []
                    for _ in range(3):
                        got = [tolist(c.score(s)) for s in seqs]
                    results[slot] = got
                    # errors are per thread: detail belongs to this call
                    try:
                        c.score([N_ITEMS + 1 + slot])
                    except iadsr.IadsrError as e:
                        results[slot].append(e.detail)
            except Exception as e:  # surfaced below
                errors.append(e)
        th = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        self.assertFalse(errors)
        for slot in range(2):
            self.assertEqual(results[slot][:-1], expected)
            self.assertIn(str(N_ITEMS + 1 + slot), results[slot][-1])


# ---------------------------------------------------------------------------

class TestIADSR(TempDirMixin, unittest.TestCase):
    SEM_DIM = 8

    @classmethod
    def setUpClass(cls):
        cls.seqs = make_seqs(200, noise=0.2)
        cls.ds = iadsr.Dataset.from_sequences(cls.seqs, n_items=N_ITEMS)
        cls.tmpdir = tempfile.TemporaryDirectory()
        # random semantic matrix in the embedding[item_id] layout, saved
        # through the binding as a .npy file
        cls.sem_data = rand_matrix(N_ITEMS + 1, cls.SEM_DIM, seed=3)
        if np is not None:
            cls.sem_data[0] = 0
        else:
            cls.sem_data[0] = [0.0] * cls.SEM_DIM
        cls.npy = os.path.join(cls.tmpdir.name, 'sem.npy')
        iadsr.npy_save(cls.npy, cls.sem_data, fsync=False)
        cls.model0 = iadsr.Model.create(N_ITEMS, dim=16, max_seq_len=16)
        cls.trainer = iadsr.Trainer.joint(
            cls.ds, cls.model0, cls.npy, denoise=dict(lambda_align=0.5),
            max_epochs=2, **FAST)
        cls.infos = []
        cls.trainer.fit(callback=cls.infos.append)
        cls.model = cls.trainer.snapshot()
        cls.aligner, cls.gate = cls.trainer.snapshot_denoiser()
        cls.sem = iadsr.Semantic.load_npy(cls.npy, row0_padding=True)
        cls.dn = iadsr.Denoiser(cls.model, cls.aligner, cls.gate, cls.sem)

    @classmethod
    def tearDownClass(cls):
        cls.tmpdir.cleanup()

    def test_joint_training(self):
        self.assertTrue(self.trainer.joint_training)
        self.assertEqual(len(self.infos), 2)
        self.assertTrue(all(math.isfinite(i.loss) for i in self.infos))
        for i in self.infos:
            # the joint loss by term (no detector: its term is NaN)
            self.assertAlmostEqual(i.loss_next + i.loss_aux, i.loss,
                                   delta=1e-9 * i.loss)
            self.assertGreater(i.loss_aux, 0)
            self.assertTrue(math.isnan(i.loss_detect))
            self.assertGreater(i.learning_rate, 0)
            self.assertEqual(i.aux_scale, 1.0)  # no back-off asked for
        self.assertEqual(self.aligner.dim, 16)
        self.assertEqual(self.aligner.semantic_dim, self.SEM_DIM)
        self.assertEqual(self.gate.dim, 16)
        self.assertAlmostEqual(self.gate.params()['lambda_align'], 0.5)

    def test_detector_training_flags(self):
        # input_mask brings clean_scores; both need detect; the gate
        # reports how it was trained
        t = iadsr.Trainer.joint(
            self.ds, self.model0, self.npy,
            denoise=dict(detect=True, input_mask=True), max_epochs=1, **FAST)
        infos = []
        t.fit(callback=infos.append)
        self.assertTrue(math.isfinite(infos[0].loss_detect))
        _, g = t.snapshot_denoiser()
        flags = g.params()['flags']
        self.assertEqual(flags & (8 | 32 | 64), 8 | 32 | 64)
        for key in ('clean_scores', 'input_mask'):
            with self.assertRaises(iadsr.IadsrError) as cm:
                iadsr.Trainer.joint(self.ds, self.model0, self.npy,
                                    denoise={key: True}, max_epochs=1)
            self.assertEqual(cm.exception.name, 'IADSR_ERR_INVALID_ARG')
            self.assertIn('IADSR_DENOISE_F_DETECT', str(cm.exception))

    def test_text_feature(self):
        # the detector's ninth feature: kept by the gate, refused without
        # the detector
        t = iadsr.Trainer.joint(
            self.ds, self.model0, self.npy,
            denoise=dict(detect=True, text_feature=True), max_epochs=1,
            **FAST)
        t.fit()
        _, g = t.snapshot_denoiser()
        self.assertEqual(g.params()['flags'] & (8 | 256), 8 | 256)
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Trainer.joint(self.ds, self.model0, self.npy,
                                denoise=dict(text_feature=True), max_epochs=1)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_INVALID_ARG')
        self.assertIn('IADSR_DENOISE_F_TEXT', str(cm.exception))

    def test_backoff(self):
        # patience 1: every validation without a better NDCG@10 lowers the
        # loss weights by 10x, twice, before patience ends the fit; the
        # flag is not kept by the gate
        t = iadsr.Trainer.joint(
            self.ds, self.model0, self.npy, split='leave_one_out',
            denoise=dict(detect=True, backoff=True), max_epochs=40,
            patience=1, learning_rate=0.02, seed=1, n_threads=1)
        infos = []
        t.fit(callback=infos.append)
        scales = [i.aux_scale for i in infos]
        self.assertEqual(scales[0], 1.0)
        self.assertEqual(sorted(scales, reverse=True), scales)
        self.assertTrue(set(scales) <= {1.0, 0.10000000149011612,
                                        0.009999999776482582}, scales)
        if len(infos) < 40:  # stopped: both back-offs came first
            self.assertEqual(len(set(scales)), 3, scales)
        _, g = t.snapshot_denoiser()
        self.assertEqual(g.params()['flags'] & 128, 0)
        plain = iadsr.Trainer(self.ds, self.model0, max_epochs=1)
        pinfo = []
        plain.fit(callback=pinfo.append)
        self.assertTrue(math.isnan(pinfo[0].aux_scale))

    def test_plain_trainer_has_no_denoiser(self):
        t = iadsr.Trainer(self.ds, self.model0, max_epochs=1)
        with self.assertRaises(iadsr.IadsrError) as cm:
            t.snapshot_denoiser()
        self.assertEqual(cm.exception.name, 'IADSR_ERR_STATE')

    def test_semantic(self):
        self.assertEqual(self.sem.n_items, N_ITEMS)
        self.assertEqual(self.sem.dim, self.SEM_DIM)
        self.assertEqual(self.sem.n_zero_rows, 0)
        row = tolist(self.sem.row(4))
        src = tolist(self.sem_data[4])
        self.assertTrue(close_all(zip(row, src), rel=1e-6))
        dec = iadsr.npy_decode(read(self.npy))
        if np is not None:
            self.assertTrue(np.array_equal(dec, self.sem_data))
        else:
            flat, shape = dec
            self.assertEqual(shape, (N_ITEMS + 1, self.SEM_DIM))
        s2 = iadsr.Semantic.from_array(self.sem_data, row0_padding=True)
        self.assertEqual(tolist(s2.row(4)), row)
        out = os.path.join(self.tmp, 's2.npy')
        s2.save_npy(out, row0_padding=True, fsync=False)
        self.assertEqual(read(out), read(self.npy))
        sc = s2.scores(self.seqs[0])
        self.assertEqual(len(sc), N_ITEMS + 1)
        ev = s2.evaluate(self.ds)
        self.assertGreater(ev['n_users'], 0)
        # the CLI's names too (no MRR: iadsr_semantic_evaluate has none)
        self.assertEqual(ev['users'], ev['n_users'])
        self.assertEqual(ev['NDCG@10'], ev['ndcg10'])
        self.assertEqual(ev['HR@20'], ev['hr20'])
        s2.check(N_ITEMS, self.SEM_DIM)
        with self.assertRaises(iadsr.IadsrError) as cm:
            s2.check(N_ITEMS + 5)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_DIM_MISMATCH')
        bad = [[1.0, float('nan')], [0.5, 0.5]]
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Semantic.from_array(bad)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_NUMERIC')
        self.assertTrue(cm.exception.detail)

    @needs_numpy
    def test_semantic_borrow_zero_copy(self):
        data = np.ascontiguousarray(self.sem_data)
        s = iadsr.Semantic.from_array(data, row0_padding=True, borrow=True)
        self.assertEqual(s._row_ptr(3), data.ctypes.data + 3 * data.strides[0])
        # a column slice is still passed by pointer, with its row stride
        wide = np.zeros((N_ITEMS + 1, 12), np.float32)
        wide[:, :self.SEM_DIM] = data
        s2 = iadsr.Semantic.from_array(wide[:, :self.SEM_DIM],
                                       row0_padding=True, borrow=True)
        self.assertEqual(s2._row_ptr(2), wide.ctypes.data + 2 * 48)
        s3 = iadsr.Semantic.from_array(data, row0_padding=True)
        self.assertNotEqual(s3._row_ptr(3),
                            data.ctypes.data + 3 * data.strides[0])
        del data, wide
        gc.collect()
        self.assertEqual(s.row(3).tolist(), s3.row(3).tolist())

    def _check_clean(self, seq, keep, scores, cleaned, max_drop=0.3):
        keep = tolist(keep)
        self.assertEqual(len(keep), len(seq))
        self.assertEqual(len(scores), len(seq))
        self.assertEqual(tolist(cleaned),
                         [s for s, k in zip(seq, keep) if k])
        self.assertTrue(keep[-1])  # protect_last
        self.assertLessEqual(len(seq) - sum(keep),
                             math.floor(max_drop * len(seq)))

    def test_clean_one(self):
        for seq in self.seqs[:20]:
            keep, scores, cleaned = self.dn.clean(seq)
            self._check_clean(seq, keep, scores, cleaned)
            self.assertTrue(all(-3 <= x <= 3 for x in tolist(scores)))
        # an explicit user vector, and a bad one
        uv = tolist(self.sem_data[1])
        self.dn.clean(self.seqs[0], user_vec=uv)
        with self.assertRaises(iadsr.IadsrError) as cm:
            self.dn.clean(self.seqs[0], user_vec=[float('inf')] * 8)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_NUMERIC')
        with self.assertRaises(iadsr.IadsrError) as cm:
            self.dn.clean([1, N_ITEMS + 1])
        self.assertEqual(cm.exception.name, 'IADSR_ERR_OUT_OF_RANGE')
        with self.assertRaises(ValueError):
            self.dn.clean(self.seqs[0], user_vec=[1.0])

    def test_gate_with_params(self):
        lenient = self.gate.with_params(theta=-3.0)
        self.assertEqual(lenient.params()['theta'], -3.0)
        self.assertAlmostEqual(lenient.params()['lambda_align'], 0.5)
        dn = iadsr.Denoiser(self.model, self.aligner, lenient, self.npy)
        for seq in self.seqs[:10]:
            keep, _, cleaned = dn.clean(seq)
            self.assertTrue(all(tolist(keep)))
        strict = self.gate.with_params(theta=3.0, max_drop=0.5)
        dn = iadsr.Denoiser(self.model, self.aligner, strict, self.sem)
        seq = self.seqs[0]
        keep, scores, cleaned = dn.clean(seq)
        self._check_clean(seq, keep, scores, cleaned, max_drop=0.5)
        self.assertEqual(len(seq) - sum(tolist(keep)),
                         math.floor(0.5 * len(seq)))

    def test_clean_dataset(self):
        cleaned, keep, scores = self.dn.clean_dataset(
            self.ds, n_threads=2, return_details=True)
        self.assertEqual(cleaned.n_users, self.ds.n_users)
        self.assertEqual(len(keep), self.ds.n_interactions)
        self.assertEqual(len(scores), self.ds.n_interactions)
        keep = tolist(keep)
        pos = 0
        for u, seq in enumerate(self.seqs):
            k = keep[pos:pos + len(seq)]
            pos += len(seq)
            self.assertEqual(tolist(cleaned.user_items(u)),
                             [s for s, kk in zip(seq, k) if kk])
            self.assertTrue(k[-1] and k[-2])  # loo: test/valid untouched
        self.assertEqual(cleaned.n_interactions, sum(keep))
        whole = self.dn.clean_dataset(self.ds, split='none')
        self.assertEqual(whole.n_users, self.ds.n_users)
        # the cleaned dataset trains like any other
        t = iadsr.Trainer(cleaned, self.model0, max_epochs=1)
        t.run_epoch()

    def test_checkpoint(self):
        path = os.path.join(self.tmp, 'ck.iadsr')
        iadsr.save_checkpoint(path, self.model, self.aligner, self.gate,
                              fsync=False)
        m, a, g = iadsr.load_checkpoint(path)
        self.assertIsNotNone(a)
        self.assertIsNotNone(g)
        self.assertEqual(g.params(), self.gate.params())
        x = tolist(self.sem_data[7])
        for which in ('short', 'long'):
            self.assertEqual(tolist(a.project(x, which)),
                             tolist(self.aligner.project(x, which)))
        c1, c2 = m.context(), self.model.context()
        self.assertEqual(tolist(c1.score(self.seqs[0])),
                         tolist(c2.score(self.seqs[0])))
        dn = iadsr.Denoiser(m, a, g, self.sem)
        for seq in self.seqs[:5]:
            r1, r2 = dn.clean(seq), self.dn.clean(seq)
            self.assertEqual([tolist(v) for v in r1],
                             [tolist(v) for v in r2])
        # from bytes, and a model-only file
        m2, a2, g2 = iadsr.load_checkpoint_bytes(read(path))
        self.assertIsNotNone(a2)
        self.assertEqual(iadsr.Model.load(path).params(), m.params())
        plain = os.path.join(self.tmp, 'plain.iadsr')
        self.model.save(plain, fsync=False)
        m3, a3, g3 = iadsr.load_checkpoint(plain)
        self.assertIsNone(a3)
        self.assertIsNone(g3)
        m4, a4, g4 = iadsr.load_checkpoint_bytes(self.model.to_bytes())
        self.assertIsNone(a4)
        wrong = iadsr.Aligner.create(8, self.SEM_DIM)
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.save_checkpoint(path, self.model, wrong, None, fsync=False)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_DIM_MISMATCH')

    def test_fresh_components_and_free_order(self):
        a = iadsr.Aligner.create(16, self.SEM_DIM, seed=3)
        g = iadsr.Gate.create(16, theta=0.5)
        self.assertEqual(g.params()['theta'], 0.5)
        m = iadsr.Model.create(N_ITEMS, dim=16, max_seq_len=16)
        sem = iadsr.Semantic.from_array(self.sem_data, row0_padding=True)
        dn = iadsr.Denoiser(m, a, g, sem)
        ref = [tolist(v) for v in dn.clean(self.seqs[0])]
        for h in (m, a, g, sem):
            h.close()
        del m, a, g, sem
        gc.collect()
        self.assertEqual([tolist(v) for v in dn.clean(self.seqs[0])], ref)
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Denoiser(self.model, iadsr.Aligner.create(8, 8),
                           self.gate, self.sem)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_DIM_MISMATCH')

    def test_mismatched_parts_refused(self):
        # issue 17: trained parts remember their semantic matrix and
        # backbone; another combination raises unless allow_mismatch
        other = rand_matrix(N_ITEMS + 1, self.SEM_DIM, seed=4)
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Denoiser(self.model, self.aligner, self.gate, other,
                           semantic_row0_padding=True)
        self.assertEqual(cm.exception.name, 'IADSR_ERR_MISMATCH')
        self.assertEqual(cm.exception.status, iadsr.ERR_MISMATCH)
        self.assertIn('another semantic matrix', str(cm.exception))
        dn = iadsr.Denoiser(self.model, self.aligner, self.gate, other,
                            semantic_row0_padding=True, allow_mismatch=True)
        self.assertEqual(len(tolist(dn.clean(self.seqs[0])[0])),
                         len(self.seqs[0]))
        gru = iadsr.Model.create(N_ITEMS, backbone='gru4rec', dim=16,
                                 max_seq_len=16)
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Denoiser(gru, self.aligner, self.gate, self.sem)
        self.assertIn('gru4rec', str(cm.exception))
        iadsr.Denoiser(gru, self.aligner, self.gate, self.sem,
                       allow_mismatch=True).close()

    def test_joint_with_array_and_user_semantic(self):
        ds = iadsr.Dataset.from_sequences(self.seqs[:60], n_items=N_ITEMS)
        users = rand_matrix(60, self.SEM_DIM, seed=9)
        t = iadsr.Trainer.joint(ds, self.model0, self.sem_data,
                                user_semantic=users,
                                denoise=dict(collab_only=True, seed=2),
                                max_epochs=1)
        self.assertTrue(math.isfinite(t.run_epoch()))
        a, g = t.snapshot_denoiser()
        self.assertEqual(g.params()['flags'], 1)
        with self.assertRaises(iadsr.IadsrError) as cm:
            iadsr.Trainer.joint(ds, self.model0, self.sem_data,
                                user_semantic=rand_matrix(5, 8, 1))
        self.assertEqual(cm.exception.name, 'IADSR_ERR_DIM_MISMATCH')

    def test_pipeline(self):
        res, model, cleaned = iadsr.pipeline(
            self.ds, self.sem, model=dict(dim=16, max_seq_len=16),
            train=dict(max_epochs=1, **FAST))
        self.assertEqual(res['iadsr_epochs'], 1)
        self.assertEqual(res['n_items_in'],
                         sum(len(s) - 2 for s in self.seqs))
        self.assertEqual(cleaned.n_users, self.ds.n_users)
        self.assertEqual(res['test']['n_users'], self.ds.n_users)
        self.assertEqual(res['test']['users'], self.ds.n_users)
        self.assertEqual(res['test']['HR@10'], res['test']['hr10'])
        self.assertEqual(model.n_items, N_ITEMS)


if __name__ == '__main__':
    unittest.main()
