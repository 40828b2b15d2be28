"""Ctrl-C (SIGINT) during Trainer.fit, with and without a progress callback:
training stops after the current epoch, the best weights stay available
through snapshot(), the previous SIGINT handler is back, and the caller gets
KeyboardInterrupt.  Left uncaught, it ends the program as any Python
KeyboardInterrupt does: a traceback, and death by SIGINT (return code
-SIGINT here; a shell reports 130).

The signals are sent to child interpreters (never to the test runner).
Run as the other files of tests/python (make check-python); the
IADSR_TEST_REPO / IADSR_TEST_INSTALLED variables of test_iadsr.py apply.
"""

import os
import random
import signal
import subprocess
import sys
import threading
import unittest

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.abspath(os.environ.get('IADSR_TEST_REPO')
                        or os.path.join(_HERE, '..', '..'))
_INSTALLED = os.environ.get('IADSR_TEST_INSTALLED', '') not in ('', '0')
_BINDINGS = os.path.join(_REPO, 'bindings', 'python')
if not _INSTALLED:
    sys.path.insert(0, _BINDINGS)

import iadsr  # noqa: E402

MAX_EPOCHS = 40   # ~0.3 s each unloaded: an ignored Ctrl-C runs them all

# The child: a dataset of 2000 users on which an epoch takes a noticeable
# time, a trainer that would run MAX_EPOCHS epochs (no early stop), and a
# watcher thread that reports the end of the first epoch.  SENDER 'self':
# the watcher sends SIGINT to its own process; 'parent': it prints EPOCH1
# and the parent sends SIGINT.  The child catches KeyboardInterrupt only to
# check the trainer, prints CHILD-OK, and raises it again.
_CHILD = '''
import os, random, signal, sys, threading, time
# Python keeps SIGINT ignored when it starts ignored (a background job,
# nohup, some CI runners): the test is about Python's default handler
signal.signal(signal.SIGINT, signal.default_int_handler)
%(path)s
import iadsr
CALLBACK, SENDER, MAX_EPOCHS = %(callback)r, %(sender)r, %(max_epochs)d
rng = random.Random(1)
n_items = 500
seqs = [[rng.randrange(1, n_items + 1) for _ in range(rng.randrange(10, 30))]
        for _ in range(2000)]
ds = iadsr.Dataset.from_sequences(seqs, n_items=n_items)
model = iadsr.Model.create(n_items, dim=16, max_seq_len=30, seed=2)
tr = iadsr.Trainer(ds, model, max_epochs=MAX_EPOCHS, patience=MAX_EPOCHS,
                   batch_size=64, n_threads=1, learning_rate=0.01, seed=3)
infos = []

def watch():
    while tr.epochs_done < 1:
        time.sleep(0.002)
    if SENDER == 'self':
        os.kill(os.getpid(), signal.SIGINT)
    else:
        print('EPOCH1', flush=True)

threading.Thread(target=watch, daemon=True).start()
try:
    tr.fit(callback=infos.append if CALLBACK else None)
except KeyboardInterrupt:
    done = tr.epochs_done
    assert 1 <= done <= 4, done
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if CALLBACK:
        assert [i.epoch for i in infos] == list(range(1, done + 1)), infos
    best = tr.snapshot()            # the best validated weights
    m = best.evaluate(ds)
    assert m['users'] == len(seqs), m
    ids, _ = best.context().topk(seqs[0], 5)
    assert len(ids) == 5
    tr.run_epoch()                  # the trainer is still usable
    print('CHILD-OK epochs=%%d HR@10=%%.4f' %% (done, m['HR@10']), flush=True)
    raise
print('CHILD-NO-INTERRUPT epochs=%%d' %% tr.epochs_done, flush=True)
'''


def _child_code(callback, sender):
    return _CHILD % {
        'path': '' if _INSTALLED else 'sys.path.insert(0, %r)' % _BINDINGS,
        'callback': callback, 'sender': sender, 'max_epochs': MAX_EPOCHS}


def _env():
    env = dict(os.environ)
    env.setdefault('OPENBLAS_NUM_THREADS', '1')
    return env


class TestCtrlC(unittest.TestCase):
    def run_child(self, callback, sender):
        p = subprocess.Popen([sys.executable, '-c',
                              _child_code(callback, sender)],
                             env=_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        lines = []
        try:
            if sender == 'parent':
                for line in p.stdout:
                    lines.append(line)
                    if line.strip() == 'EPOCH1':
                        p.send_signal(signal.SIGINT)
                        break
            out, err = p.communicate(timeout=600)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        out = ''.join(lines) + out
        what = 'rc %s\nstdout:\n%s\nstderr:\n%s' % (p.returncode, out[-3000:],
                                                    err[-3000:])
        self.assertIn('CHILD-OK', out, what)
        self.assertNotIn('CHILD-NO-INTERRUPT', out, what)
        self.assertNotIn('Exception ignored', err, what)
        # an uncaught KeyboardInterrupt: traceback, then death by SIGINT
        self.assertEqual(err.strip().splitlines()[-1], 'KeyboardInterrupt',
                         what)
        self.assertEqual(p.returncode, -signal.SIGINT, what)

    def test_with_callback(self):
        self.run_child(True, 'self')

    def test_without_callback(self):
        self.run_child(False, 'self')

    def test_from_the_parent(self):
        self.run_child(False, 'parent')
        self.run_child(True, 'parent')


class TestHandlers(unittest.TestCase):
    """The SIGINT handler around fit, without sending any signal."""

    @classmethod
    def setUpClass(cls):
        rng = random.Random(4)
        seqs = [[rng.randrange(1, 31) for _ in range(rng.randrange(4, 9))]
                for _ in range(40)]
        cls.ds = iadsr.Dataset.from_sequences(seqs, n_items=30)
        cls.model = iadsr.Model.create(30, dim=8, max_seq_len=10)

    def trainer(self):
        return iadsr.Trainer(self.ds, self.model, max_epochs=2, seed=1)

    def test_deferred_only_while_fit_runs(self):
        before = signal.getsignal(signal.SIGINT)
        seen = []

        def cb(info):
            seen.append(signal.getsignal(signal.SIGINT))

        with self.trainer() as t:
            self.assertTrue(t.fit(cb))
        self.assertIs(signal.getsignal(signal.SIGINT), before)
        if before is signal.default_int_handler:
            self.assertEqual(len(seen), 2)
            self.assertIsNot(seen[0], before)   # the binding's, during fit
        # an exception from the callback still comes through, and the
        # handler is restored
        with self.trainer() as t:
            with self.assertRaises(ZeroDivisionError):
                t.fit(lambda info: 1 / 0)
        self.assertIs(signal.getsignal(signal.SIGINT), before)

    def test_own_handler_left_alone(self):
        def mine(signum, frame):
            pass
        old = signal.signal(signal.SIGINT, mine)
        try:
            seen = []
            with self.trainer() as t:
                t.fit(lambda info: seen.append(
                    signal.getsignal(signal.SIGINT)))
            self.assertEqual(seen, [mine, mine])
            self.assertIs(signal.getsignal(signal.SIGINT), mine)
        finally:
            signal.signal(signal.SIGINT, old)

    def test_other_thread_leaves_signals_alone(self):
        before = signal.getsignal(signal.SIGINT)
        seen, errors = [], []

        def run():
            try:
                with self.trainer() as t:
                    t.fit(lambda info: seen.append(
                        signal.getsignal(signal.SIGINT)))
            except BaseException as e:  # reported below
                errors.append(e)
        th = threading.Thread(target=run)
        th.start()
        th.join()
        self.assertEqual(errors, [])
        self.assertEqual(seen, [before, before])

    def test_nested_fit(self):
        before = signal.getsignal(signal.SIGINT)
        inner = []

        def cb(info):
            with self.trainer() as t2:
                inner.append(t2.fit())
        with self.trainer() as t:
            self.assertTrue(t.fit(cb))
        self.assertEqual(inner, [True, True])
        self.assertIs(signal.getsignal(signal.SIGINT), before)


if __name__ == '__main__':
    unittest.main()
