"""Tests of the high-level Python interface: iadsr.Interactions (your own
ids, time order, vocabularies shared with `iadsr import`) and
iadsr.Recommender (fit, recommend, evaluate, denoise, save / load).

Run as the other files of tests/python (make check-python, with and
without numpy); the IADSR_TEST_REPO / IADSR_TEST_INSTALLED variables of
test_iadsr.py apply.  The pandas tests skip when pandas is missing (and
with IADSR_PY_NO_NUMPY=1, where the binding returns plain lists); the
tests of the CLI skip when bin/iadsr is not built.
"""

import csv
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import unittest
import warnings

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.abspath(os.environ.get('IADSR_TEST_REPO')
                        or os.path.join(_HERE, '..', '..'))
_INSTALLED = os.environ.get('IADSR_TEST_INSTALLED', '') not in ('', '0')
_BINDINGS = os.path.join(_REPO, 'bindings', 'python')
if not _INSTALLED:
    sys.path.insert(0, _BINDINGS)

import iadsr  # noqa: E402

try:
    import pandas as pd
except ImportError:
    pd = None
needs_pandas = unittest.skipUnless(pd is not None, 'pandas not installed')
# the binding returns DataFrames only when it uses numpy and pandas exists
FRAMES = iadsr._pandas() is not None
CLI = os.path.join(_REPO, 'bin', 'iadsr')
HAVE_CLI = os.access(CLI, os.X_OK)
needs_cli = unittest.skipUnless(HAVE_CLI, 'bin/iadsr not built')

N_ITEMS = 30
ITEM_NAMES = ['sku-%02d' % i for i in range(N_ITEMS)]
FAST = dict(epochs=2, dim=16, max_len=10, batch=32, seed=3)


def make_log(n_users=40, seed=1):
    """(users, items, times) of a shuffled log with string ids: each user
    walks sku-c, sku-c+1, ... (a pattern learnt in a few epochs)."""
    rng = random.Random(seed)
    rows = []
    for u in range(n_users):
        c = rng.randrange(N_ITEMS)
        for t in range(rng.randrange(5, 10)):
            rows.append(('user-%d' % u, ITEM_NAMES[c], 1000 + 10 * t))
            c = (c + 1) % N_ITEMS
    rng.shuffle(rows)
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


def nan_none(x):
    return None if x != x else x


def rows_of(result):
    """recommend()/denoise() output -> list of dicts (either form)."""
    if FRAMES:
        return result.to_dict('records')
    if isinstance(result, dict):
        keys = list(result)
        return [dict(zip(keys, vals)) for vals in zip(*result.values())]
    return result


class InteractionsTest(unittest.TestCase):

    def test_string_ids_round_trip(self):
        users = ['alice', 'bob', 'alice', 'carol', 'bob', 'ålice', 'alice']
        items = ['B07', 'x y', 'B07', 'B01', 'B01', 'B07', 'ünï']
        inter = iadsr.Interactions.from_arrays(users, items)
        self.assertEqual(inter.user_ids, ['alice', 'bob', 'carol', 'ålice'])
        # items in first appearance over the sequences, users in order
        self.assertEqual(inter.item_ids, ['B07', 'ünï', 'x y', 'B01'])
        self.assertEqual(inter.sequences(dense=True),
                         [[1, 1, 2], [3, 4], [4], [1]])
        self.assertEqual(inter.sequences(),
                         [['B07', 'B07', 'ünï'], ['x y', 'B01'], ['B01'],
                          ['B07']])
        self.assertEqual(inter.user_index('carol'), 3)
        self.assertEqual(inter.item_index('x y'), 3)
        self.assertEqual(inter.history('bob'), ['x y', 'B01'])
        with self.assertRaises(iadsr.UnknownIdError):
            inter.user_index('dave')
        self.assertEqual((inter.n_users, inter.n_items, len(inter)),
                         (4, 4, 7))
        ds = inter.to_dataset()
        self.assertEqual((ds.n_users, ds.n_items, ds.n_interactions),
                         (4, 4, 7))
        self.assertEqual(ds.to_lists(), inter.sequences(dense=True))
        with tempfile.TemporaryDirectory() as d:
            v = os.path.join(d, 'vocab.tsv')
            s = os.path.join(d, 'seq.txt')
            inter.save_vocab(v)
            inter.save_sequences(s)
            with open(v, 'rb') as fh:
                self.assertEqual(fh.read().decode('utf-8').splitlines()[:3],
                                 ['kind\tid\texternal', 'user\t1\talice',
                                  'user\t2\tbob'])
            self.assertEqual(iadsr.Interactions.load_vocab(v),
                             (inter.user_ids, inter.item_ids))
            back = iadsr.Interactions.load(s, v)
            self.assertEqual(back.user_ids, inter.user_ids)
            self.assertEqual(back.item_ids, inter.item_ids)
            self.assertEqual(back.sequences(), inter.sequences())

    def test_int_and_mixed_ids(self):
        inter = iadsr.Interactions.from_arrays([10, 10, 7], [3, 5, 3])
        self.assertEqual(inter.user_ids, [10, 7])
        self.assertEqual(inter.item_ids, [3, 5])
        with tempfile.TemporaryDirectory() as d:
            bad = iadsr.Interactions.from_arrays([1, '1'], ['a', 'b'])
            with self.assertRaises(ValueError):     # same text twice
                bad.save_vocab(os.path.join(d, 'v.tsv'))
            tab = iadsr.Interactions.from_arrays(['a\tb'], ['x'])
            with self.assertRaises(ValueError):
                tab.save_vocab(os.path.join(d, 'v.tsv'))
            self.assertFalse(os.path.exists(os.path.join(d, 'v.tsv')))
        with self.assertRaises(ValueError):
            iadsr.Interactions.from_arrays([1, 2], [1])
        with self.assertRaises(ValueError):
            iadsr.Interactions.from_arrays([1, 2], [1, 2], [1.0, math.nan])

    def test_time_order_with_ties(self):
        users = ['u', 'v', 'u', 'u', 'u', 'v', 'u']
        items = ['a', 'b', 'c', 'd', 'e', 'f', 'g']
        times = [5, 1, 3, 5, 3, 0, 9]
        inter = iadsr.Interactions.from_arrays(users, items, times)
        # u: times 3 (c, e in row order), 5 (a, d in row order), 9 (g)
        self.assertEqual(inter.sequences(),
                         [['c', 'e', 'a', 'd', 'g'], ['f', 'b']])
        self.assertEqual(inter.item_ids, ['c', 'e', 'a', 'd', 'g', 'f', 'b'])
        self.assertEqual(inter.to_arrays(),
                         {'user': ['u'] * 5 + ['v'] * 2,
                          'item': ['c', 'e', 'a', 'd', 'g', 'f', 'b'],
                          'time': [3, 3, 5, 5, 9, 0, 1]})
        # without times: the row order
        plain = iadsr.Interactions.from_arrays(users, items)
        self.assertEqual(plain.sequences(),
                         [['a', 'c', 'd', 'e', 'g'], ['b', 'f']])

    @unittest.skipUnless(iadsr.HAVE_NUMPY, 'numpy not used')
    def test_numpy_arrays(self):
        np = iadsr.np
        inter = iadsr.Interactions.from_arrays(
            np.array([3, 1, 3]), np.array([7, 8, 9]),
            np.array([2.0, 0.0, 1.0]))
        self.assertEqual(inter.user_ids, [3, 1])
        self.assertIs(type(inter.user_ids[0]), int)
        self.assertEqual(inter.sequences(), [[9, 7], [8]])

    @needs_pandas
    def test_from_frame_equals_from_arrays(self):
        users, items, times = make_log()
        df = pd.DataFrame({'uid': users, 'sku': items, 'ts': times,
                           'other': range(len(users))})
        a = iadsr.Interactions.from_arrays(users, items, times)
        f = iadsr.Interactions.from_frame(df, user='uid', item='sku',
                                          time='ts')
        self.assertEqual(f.user_ids, a.user_ids)
        self.assertEqual(f.item_ids, a.item_ids)
        self.assertEqual(f.to_dataset().to_lists(),
                         a.to_dataset().to_lists())
        self.assertEqual(f.to_arrays(), a.to_arrays())
        # datetimes order as their numbers do
        df['when'] = pd.to_datetime(df['ts'], unit='s')
        w = iadsr.Interactions.from_frame(df, user='uid', item='sku',
                                          time='when')
        self.assertEqual(w.to_dataset().to_lists(),
                         a.to_dataset().to_lists())
        with self.assertRaises(KeyError):
            iadsr.Interactions.from_frame(df)   # no user_id column
        if FRAMES:
            back = a.to_frame()
            self.assertEqual(list(back.columns), ['user', 'item', 'time'])
            self.assertEqual(len(back), len(users))

    @needs_cli
    def test_same_files_as_iadsr_import(self):
        users, items, times = make_log(n_users=25, seed=4)
        # ties: every time of user-3 equal, so its file order decides
        times = [0 if u == 'user-3' else t for u, t in zip(users, times)]
        users[0] = 'ünïcode user'
        inter = iadsr.Interactions.from_arrays(users, items, times)
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, 'log.csv')
            with open(log, 'w', newline='', encoding='utf-8') as fh:
                w = csv.writer(fh)
                w.writerow(['user_id', 'item_id', 'timestamp'])
                w.writerows(zip(users, items, times))
            r = subprocess.run([CLI, 'import', '--in', log, '--out',
                                os.path.join(d, 'cli.txt'), '--vocab',
                                os.path.join(d, 'cli.tsv'), '--quiet'],
                               capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            inter.save_sequences(os.path.join(d, 'py.txt'))
            inter.save_vocab(os.path.join(d, 'py.tsv'))
            for a, b in (('cli.txt', 'py.txt'), ('cli.tsv', 'py.tsv')):
                with open(os.path.join(d, a), 'rb') as fa, \
                        open(os.path.join(d, b), 'rb') as fb:
                    self.assertEqual(fa.read(), fb.read(), a)


class RecommenderTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        users, items, times = make_log()
        cls.inter = iadsr.Interactions.from_arrays(users, items, times)
        cls.rec = iadsr.Recommender(**FAST)
        cls.rec.fit(cls.inter, verbose=False)
        rng = random.Random(7)
        cls.sem = {x: [rng.gauss(0, 1) for _ in range(8)]
                   for x in ITEM_NAMES}
        cls.tmp = tempfile.mkdtemp(prefix='iadsr-highlevel-')

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_fit_recommend_evaluate(self):
        rec = self.rec
        self.assertEqual(len(rec.history), 2)
        self.assertEqual(rec.model.n_items, N_ITEMS)
        out = rec.recommend(users=['user-1', 'user-5'], k=4)
        if FRAMES:
            self.assertEqual(list(out.columns),
                             ['user', 'rank', 'item', 'score'])
        rows = rows_of(out)
        self.assertEqual([(r['user'], r['rank']) for r in rows],
                         [('user-1', k) for k in range(1, 5)] +
                         [('user-5', k) for k in range(1, 5)])
        for r in rows:
            self.assertIn(r['item'], ITEM_NAMES)
        sc = [r['score'] for r in rows[:4]]
        self.assertEqual(sc, sorted(sc, reverse=True))
        everyone = rows_of(rec.recommend(k=2))
        self.assertEqual(len(everyone), 2 * self.inter.n_users)
        self.assertEqual(everyone[0]['user'], self.inter.user_ids[0])
        m = rec.evaluate()
        self.assertEqual(list(m), ['users', 'HR@5', 'HR@10', 'HR@20',
                                   'NDCG@5', 'NDCG@10', 'NDCG@20', 'MRR'])
        self.assertEqual(m['users'], self.inter.n_users)
        self.assertEqual(m, iadsr.metrics_from_ranks(
            rec.model.evaluate_ranks(self.inter.to_dataset())[1]))
        m10 = rec.evaluate(ks=[10])
        self.assertEqual(list(m10), ['users', 'HR@10', 'NDCG@10', 'MRR'])
        self.assertEqual(m10['HR@10'], m['HR@10'])
        # other interactions of the same items (users renamed)
        users, items, times = make_log(n_users=10, seed=9)
        other = iadsr.Interactions.from_arrays(
            ['new-' + u for u in users], items, times)
        self.assertEqual(rec.evaluate(other)['users'], 10)

    def test_exclude_seen(self):
        for u in ('user-0', 'user-2', 'user-7'):
            seen = set(self.inter.history(u))
            got = [r['item'] for r in rows_of(
                self.rec.recommend(users=[u], k=N_ITEMS))]
            self.assertEqual(len(got), N_ITEMS - len(seen))
            self.assertFalse(seen & set(got))
            alls = [r['item'] for r in rows_of(
                self.rec.recommend(users=[u], k=N_ITEMS,
                                   exclude_seen=False))]
            self.assertEqual(sorted(alls), sorted(ITEM_NAMES))

    def test_unknown_user_and_new_histories(self):
        with self.assertRaises(iadsr.UnknownIdError) as cm:
            self.rec.recommend(users=['user-1', 'nobody'])
        self.assertIn("'nobody'", str(cm.exception))
        self.assertIn('histories', str(cm.exception))
        self.assertIsInstance(cm.exception, KeyError)
        # a new user's history: as the known user with the same history
        hist = self.inter.history('user-4')
        new = rows_of(self.rec.recommend(histories=[hist], k=5))
        old = rows_of(self.rec.recommend(users=['user-4'], k=5))
        self.assertEqual([r['user'] for r in new], [0] * 5)
        self.assertEqual([r['item'] for r in new],
                         [r['item'] for r in old])
        with self.assertWarns(RuntimeWarning):
            labelled = rows_of(self.rec.recommend(
                users=['guest'], histories=[hist + ['never-seen']], k=5))
        self.assertEqual([(r['user'], r['item']) for r in labelled],
                         [('guest', r['item']) for r in old])
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with self.assertRaises(ValueError):
                self.rec.recommend(histories=[['never-seen']])
        with self.assertRaises(ValueError):
            self.rec.recommend(users=['a', 'b'], histories=[hist])
        with self.assertRaises(RuntimeError):
            iadsr.Recommender().recommend()

    def test_denoise(self):
        with self.assertRaises(RuntimeError) as cm:
            self.rec.denoise()
        self.assertIn('semantic', str(cm.exception))
        rec = iadsr.Recommender(**FAST)
        rec.fit(self.inter, semantic=self.sem, verbose=False)
        self.assertIsNotNone(rec.gate)
        # the CLI's defaults: the detector with its hold-out, the back-off
        # of the loss weights (off when asked)
        _, _, den = iadsr._split_params({})
        self.assertEqual((den['detect'], den['holdout'], den['backoff']),
                         (True, True, True))
        _, _, den = iadsr._split_params({'backoff': False, 'gate': 'paper'})
        self.assertEqual((den['detect'], den['backoff']), (False, False))
        self.assertTrue(all(h.aux_scale in (1.0, 0.10000000149011612,
                                            0.009999999776482582)
                            for h in rec.history))
        allrows = rows_of(rec.denoise(keep_all=True))
        self.assertEqual(len(allrows), len(self.inter))
        self.assertEqual([(r['user'], r['item'], r['time'])
                          for r in allrows],
                         list(zip(*self.inter.to_arrays().values())))
        kept = rows_of(rec.denoise())
        self.assertEqual(len(kept), sum(r['kept'] for r in allrows))
        self.assertLess(len(kept), len(allrows))
        self.assertTrue(0.0 <= rec.noise_rate <= 1.0)
        # split='loo': the last two items of each user are kept, unscored
        last = {}
        for r in allrows:
            last.setdefault(r['user'], []).append(r)
        for rs in last.values():
            self.assertTrue(all(r['kept'] for r in rs[-2:]))
            self.assertTrue(all(math.isnan(r['score']) for r in rs[-2:]))
        # the same after save / load
        path = os.path.join(self.tmp, 'sem')
        rec.save(path)
        back = iadsr.Recommender.load(path)
        self.assertEqual([(r['user'], r['item'], nan_none(r['score']))
                          for r in rows_of(back.denoise())],
                         [(r['user'], r['item'], nan_none(r['score']))
                          for r in kept])
        # a DataFrame indexed by item id gives the same matrix
        if FRAMES:
            frame = pd.DataFrame.from_dict(self.sem, orient='index')
            rec2 = iadsr.Recommender(**FAST)
            rec2.fit(self.inter, semantic=frame, verbose=False)
            self.assertTrue(rec2.denoise().equals(rec.denoise()))

    def test_save_load_round_trip(self):
        path = os.path.join(self.tmp, 'plain')
        self.rec.save(path)
        self.assertEqual(sorted(os.listdir(path)),
                         ['model.iadsr', 'recommender.json',
                          'sequences.txt', 'vocab.tsv'])
        back = iadsr.Recommender.load(path)
        self.assertEqual(rows_of(back.recommend(k=5)),
                         rows_of(self.rec.recommend(k=5)))
        self.assertEqual(back.evaluate(), self.rec.evaluate())
        self.assertEqual(back.model.item_ids, self.inter.item_ids)
        self.assertEqual(back.get_params(), FAST)
        # int ids come back as ints
        inter = iadsr.Interactions.from_arrays(
            [u * 7 for u in range(20) for _ in range(4)],
            [100 + (u + t) % 9 for u in range(20) for t in range(4)])
        rec = iadsr.Recommender(**FAST).fit(inter, verbose=False)
        rec.save(os.path.join(self.tmp, 'ints'))
        back = iadsr.Recommender.load(os.path.join(self.tmp, 'ints'))
        self.assertEqual(back.interactions.user_ids, inter.user_ids)
        self.assertEqual(back.interactions.item_ids, inter.item_ids)
        self.assertEqual(rows_of(back.recommend(users=[7, 14], k=3)),
                         rows_of(rec.recommend(users=[7, 14], k=3)))

    @needs_cli
    def test_cli_reads_the_saved_vocabulary(self):
        path = os.path.join(self.tmp, 'cli')
        self.rec.save(path)
        r = subprocess.run(
            [CLI, 'recommend', '--model', os.path.join(path, 'model.iadsr'),
             '--data', os.path.join(path, 'sequences.txt'), '--vocab',
             os.path.join(path, 'vocab.tsv'), '--k', '5', '--json',
             '--exclude-history'], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        cli = [json.loads(line) for line in r.stdout.decode().splitlines()]
        mine = rows_of(self.rec.recommend(k=5))
        self.assertEqual([(o['user'], it) for o in cli for it in o['items']],
                         [(r['user'], r['item']) for r in mine])

    def test_parameters(self):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            rec = iadsr.Recommender(max_epochs=1, learning_rate=0.01,
                                    batch_size=32, dim=16, max_seq_len=10,
                                    seed=3)
        dep = [x for x in w if issubclass(x.category, DeprecationWarning)]
        self.assertEqual(len(dep), 4)
        self.assertIn("'max_epochs' is deprecated, use 'epochs'",
                      str(dep[0].message))
        self.assertEqual(dep[0].filename, __file__)
        self.assertEqual(rec.get_params(),
                         dict(epochs=1, lr=0.01, batch=32, dim=16,
                              max_len=10, seed=3))
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            rec.fit(self.inter, verbose=False, n_threads=1)
            iadsr.Recommender(**FAST)       # the new names: no warning
        self.assertEqual(len(w), 1)
        self.assertEqual(len(rec.history), 1)
        self.assertEqual(rec.model.max_seq_len, 10)
        with self.assertRaises(TypeError):
            iadsr.Recommender(epoch=3)
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            with self.assertRaises(TypeError):
                iadsr.Recommender(epochs=3, max_epochs=3)
        # the low-level classes keep their names, without a warning
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always')
            m = iadsr.Model.create(5, dim=8, max_seq_len=4)
            ds = iadsr.Dataset.from_sequences([[1, 2, 3, 4]], n_items=5)
            iadsr.Trainer(ds, m, max_epochs=1, learning_rate=0.01,
                          batch_size=4).close()
        self.assertEqual(w, [])

    def test_verbose_lines(self):
        err = _Capture()
        old, sys.stderr = sys.stderr, err
        saved = sys.modules.get('tqdm', 0)
        sys.modules['tqdm'] = None     # the lines, even with tqdm installed
        try:
            iadsr.Recommender(**FAST).fit(self.inter, verbose=True)
            lines = err.text.splitlines()
            err.text = ''
            iadsr.Recommender(**FAST).fit(self.inter, verbose=False)
        finally:
            sys.stderr = old
            if saved == 0:
                del sys.modules['tqdm']
            else:
                sys.modules['tqdm'] = saved
        self.assertEqual(len(lines), 2, lines)
        self.assertTrue(lines[0].startswith('epoch 1/2  loss '), lines[0])
        self.assertIn('valid NDCG@10 ', lines[0])
        self.assertTrue(lines[1].endswith(' s'), lines[1])
        self.assertEqual(err.text, '')


class _Capture:
    def __init__(self):
        self.text = ''

    def write(self, s):
        self.text += s

    def flush(self):
        pass


# Ctrl-C during Recommender.fit, in a child interpreter: the progress
# lines go through a stderr wrapper that sends SIGINT to the process after
# the first epoch's line.
_CHILD = '''
import os, random, signal, sys
# a Python started with SIGINT ignored (a background job, some CI runners)
# keeps it ignored: the test is about Python's default handler
signal.signal(signal.SIGINT, signal.default_int_handler)
%(path)s
sys.modules['tqdm'] = None
import iadsr
rng = random.Random(1)
users, items = [], []
for u in range(2000):
    for _ in range(rng.randrange(10, 30)):
        users.append('u%%d' %% u)
        items.append('i%%d' %% rng.randrange(500))
inter = iadsr.Interactions.from_arrays(users, items)

class Err:
    def write(self, s):
        sys.__stderr__.write(s)
        if s.startswith('epoch 1/'):
            os.kill(os.getpid(), signal.SIGINT)
    def flush(self):
        sys.__stderr__.flush()

sys.stderr = Err()
rec = iadsr.Recommender(epochs=40, patience=40, dim=16, max_len=30,
                        batch=64, lr=0.01, seed=3)
try:
    rec.fit(inter)
except KeyboardInterrupt:
    assert 1 <= len(rec.history) <= 4, len(rec.history)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    out = rec.recommend(users=['u1'], k=3)
    assert len(out) == 3, out
    print('CHILD-OK epochs=%%d' %% len(rec.history), flush=True)
    raise
print('CHILD-NO-INTERRUPT', flush=True)
'''


class SigintTest(unittest.TestCase):

    def test_ctrl_c_keeps_best_weights(self):
        path = '' if _INSTALLED else 'sys.path.insert(0, %r)' % _BINDINGS
        r = subprocess.run([sys.executable, '-c', _CHILD % {'path': path}],
                           capture_output=True, text=True, timeout=300)
        self.assertIn('CHILD-OK', r.stdout, r.stderr[-2000:])
        self.assertEqual(r.returncode, -signal.SIGINT, r.stderr[-2000:])
        self.assertIn('KeyboardInterrupt', r.stderr)


if __name__ == '__main__':
    unittest.main()
