"""Python binding for libiadsr (ctypes, standard library only).

numpy is used when it is installed (zero-copy inputs, numpy outputs); without
it (or with IADSR_PY_NO_NUMPY=1) inputs may be lists or array.array and
outputs are array.array / memoryview objects.  See README.md next to this
file for the full description; include/iadsr.h is the contract this module
mirrors.

Library lookup: $IADSR_LIBRARY (a path; used alone when set), else the
copy bundled by the pip package (iadsr.libs/libiadsr.so.* next to this
file), else <repo>/lib/libiadsr.so relative to this file (the source
tree), else ctypes.util.find_library('iadsr').  The binding is written for libiadsr 0.3
and accepts a library 0.y.z with y >= 3 (later 0.x minors only append to the
params structs and the binding passes its own struct_size).

Memory safety: the binding checks every array it hands the library against
what the library will read or write (CSR offsets, output buffers) and raises
ValueError instead; close() never frees a handle a running call or a live
view still uses (the free is deferred to the last of them); a Context or
Trainer entered by a second thread raises ConcurrentUseError; paths with a
NUL byte raise ValueError; borrow=True never lends a silent copy.
"""

import array
import collections
import ctypes
import ctypes.util
import json
import math
import operator
import os
import signal
import sys
import tempfile
import threading
import warnings

__all__ = [
    'IadsrError', 'ConcurrentUseError', 'HAVE_NUMPY', 'CSR', 'ProgressInfo',
    'Dataset', 'Model', 'Trainer', 'Context', 'Semantic', 'Aligner',
    'Gate', 'Denoiser', 'evaluate', 'evaluate_ranks', 'metrics_from_ranks',
    'METRIC_ALIASES', 'save_checkpoint',
    'load_checkpoint', 'load_checkpoint_bytes', 'npy_decode', 'npy_save',
    'pipeline', 'version', 'version_number', 'build_info', 'format_version',
    'strerror', 'status_name', 'last_error', 'clear_error', 'struct_sizes',
    'Interactions', 'Recommender', 'UnknownIdError',
]

if os.environ.get('IADSR_PY_NO_NUMPY', '') not in ('', '0'):
    np = None
else:
    try:
        import numpy as np
    except ImportError:  # the stdlib path below covers this
        np = None

HAVE_NUMPY = np is not None

# array.array type codes with exactly 4 / 8 bytes on this platform.
_I32 = next(c for c in 'ilh' if array.array(c).itemsize == 4)
_I64 = next(c for c in 'qlL' if array.array(c).itemsize == 8)

# ---------------------------------------------------------------------------
# Constants (values from include/iadsr.h; part of the ABI)
# ---------------------------------------------------------------------------

OK = 0
ERR_GENERIC = -1
ERR_NOMEM = -2
ERR_INVALID_ARG = -3
ERR_OUT_OF_RANGE = -4
ERR_BUFFER_TOO_SMALL = -5
ERR_IO = -6
ERR_FORMAT = -7
ERR_VERSION = -8
ERR_CHECKSUM = -9
ERR_STATE = -10
ERR_UNSUPPORTED = -11
ERR_NUMERIC = -12
ERR_ABORTED = -13
ERR_DIM_MISMATCH = -14
ERR_MISMATCH = -15

BACKBONES = {'default': 0, 'sasrec': 1, 'gru4rec': 2, 'caser': 3}
ACTIVATIONS = {'default': 0, 'gelu': 1, 'relu': 2}
SPLITS = {'default': 0, 'loo': 1, 'leave_one_out': 1, 'none': 2}
TARGETS = {'test': 1, 'valid': 2}

_FLAG_BORROW = 1
_TOPK_EXCLUDE_HISTORY = 1
_CTX_F_FP16_SCAN = 1
_CTX_F_INT8_SCAN = 2
_SAVE_NO_FSYNC = 1
_MODEL_F_PRE_LN = 1
_SEMANTIC_ROW0_PADDING = 2
_DENOISE_F_COLLAB_ONLY = 1
_DENOISE_F_CARRY_MASKS = 2
_DENOISE_F_PAPER = 4
_DENOISE_F_DETECT = 8
_DENOISE_F_HOLDOUT = 16
_DENOISE_F_CLEAN_SCORES = 32
_DENOISE_F_INPUT_MASK = 64
_DENOISE_F_BACKOFF = 128
_DENOISE_F_TEXT = 256
_DENOISER_ALLOW_MISMATCH = 1

REQUIRED_VERSION = (0, 3)

# ---------------------------------------------------------------------------
# Struct mirrors (field order and types exactly as in the header)
# ---------------------------------------------------------------------------

_u32, _i32, _i64, _u64 = (ctypes.c_uint32, ctypes.c_int32, ctypes.c_int64,
                          ctypes.c_uint64)
_f32, _f64 = ctypes.c_float, ctypes.c_double


class ModelParams(ctypes.Structure):
    _fields_ = [('struct_size', _u32), ('backbone', _i32),
                ('n_items', _i32), ('dim', _i32), ('max_seq_len', _i32),
                ('n_layers', _i32), ('n_heads', _i32), ('ffn_dim', _i32),
                ('activation', _i32), ('dropout', _f32), ('flags', _u32),
                ('reserved0', _u32), ('seed', _u64),
                ('caser_window', _i32), ('caser_h_filters', _i32),
                ('caser_v_filters', _i32), ('reserved1', _u32)]


class TrainParams(ctypes.Structure):
    _fields_ = [('struct_size', _u32), ('split', _i32),
                ('max_epochs', _i32), ('batch_size', _i32),
                ('patience', _i32), ('eval_every', _i32),
                ('n_threads', _i32), ('learning_rate', _f32),
                ('adam_beta1', _f32), ('adam_beta2', _f32),
                ('adam_eps', _f32), ('weight_decay', _f32),
                ('flags', _u32), ('reserved0', _u32), ('seed', _u64),
                ('label_smoothing', _f32), ('history_penalty', _f32),
                # since 0.4.0: data-parallel training over processes (an
                # iadsr_allreduce_fn and its user pointer; not driven from
                # Python yet, so left NULL: one process)
                ('allreduce', ctypes.c_void_p),
                ('allreduce_user', ctypes.c_void_p),
                ('rank', _i32), ('n_ranks', _i32)]


class ProgressInfoStruct(ctypes.Structure):
    _fields_ = [('struct_size', _u32), ('epoch', _i32),
                ('max_epochs', _i32), ('best_epoch', _i32),
                ('loss', _f64), ('valid_hr10', _f64),
                ('valid_ndcg10', _f64), ('best_ndcg10', _f64),
                ('epoch_seconds', _f64), ('elapsed_seconds', _f64),
                # since 0.3.0 (struct_size >= 96)
                ('loss_next', _f64), ('loss_aux', _f64),
                ('loss_detect', _f64), ('learning_rate', _f64),
                ('aux_scale', _f64)]


class CtxParams(ctypes.Structure):
    _fields_ = [('struct_size', _u32), ('max_batch', _i32),
                ('flags', _u32), ('reserved0', _u32)]


class EvalParams(ctypes.Structure):
    _fields_ = [('struct_size', _u32), ('target', _i32),
                ('n_threads', _i32), ('flags', _u32)]


class Metrics(ctypes.Structure):
    _fields_ = [('struct_size', _u32), ('reserved0', _u32),
                ('n_users', _i64), ('hr5', _f64), ('hr10', _f64),
                ('hr20', _f64), ('ndcg5', _f64), ('ndcg10', _f64),
                ('ndcg20', _f64)]


class DenoiseParams(ctypes.Structure):
    _fields_ = [('struct_size', _u32), ('flags', _u32),
                ('lambda_align', _f32), ('lambda_recon', _f32),
                ('tau_align', _f32), ('tau_gumbel', _f32), ('theta', _f32),
                ('max_drop', _f32), ('protect_last', _i32),
                ('reserved0', _u32), ('seed', _u64)]


class PipelineResult(ctypes.Structure):
    _fields_ = [('struct_size', _u32), ('iadsr_epochs', _i32),
                ('retrain_epochs', _i32), ('reserved0', _u32),
                ('n_items_in', _i64), ('n_items_dropped', _i64),
                ('n_users_touched', _i64), ('iadsr_seconds', _f64),
                ('retrain_seconds', _f64), ('test', Metrics)]


_PROGRESS_FN = ctypes.CFUNCTYPE(ctypes.c_int,
                                ctypes.POINTER(ProgressInfoStruct),
                                ctypes.c_void_p)

# ---------------------------------------------------------------------------
# Loading the library
# ---------------------------------------------------------------------------


# Where the pip package (bindings/python/setup.py) puts its copy of the
# library: a directory next to this module, named after the SONAME inside.
BUNDLE_DIR = 'iadsr.libs'


def _bundled(here):
    d = os.path.join(here, BUNDLE_DIR)
    try:
        names = sorted(n for n in os.listdir(d)
                       if n.startswith('libiadsr.so'))
    except OSError:
        return []
    return [os.path.join(d, n) for n in names]


def _candidates():
    env = os.environ.get('IADSR_LIBRARY')
    if env:
        return [env]  # an explicit choice is never silently replaced
    here = os.path.dirname(os.path.abspath(__file__))
    out = _bundled(here)
    local = os.path.normpath(os.path.join(here, '..', '..', 'lib',
                                          'libiadsr.so'))
    if os.path.exists(local):
        out.append(local)
    found = ctypes.util.find_library('iadsr')
    if found:
        out.append(found)
    return out


def _version_ok(number):
    """The compatibility rule: 0.y.z with y >= 3 (see module docstring)."""
    major, minor = number // 10000, (number // 100) % 100
    return major == REQUIRED_VERSION[0] and minor >= REQUIRED_VERSION[1]


def _load():
    errors = []
    for path in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            errors.append('%s: %s' % (path, e))
            continue
        lib.iadsr_version_number.restype = ctypes.c_int
        lib.iadsr_version_number.argtypes = []
        v = lib.iadsr_version_number()
        if not _version_ok(v):
            errors.append('%s: version %d.%d.%d is not compatible (need '
                          '0.y with y >= %d)' % (path, v // 10000,
                                                 (v // 100) % 100, v % 100,
                                                 REQUIRED_VERSION[1]))
            continue
        return lib, path
    raise ImportError('libiadsr not found or not usable; set IADSR_LIBRARY '
                      'to the path of libiadsr.so (' +
                      ('; '.join(errors) or 'no candidate') + ')')


_lib, LIBRARY_PATH = _load()

_P = ctypes.c_void_p              # handles and data pointers (passed as int)
_PP = ctypes.POINTER(ctypes.c_void_p)
_S = ctypes.c_char_p
_SZ = ctypes.c_size_t
_C_INT = ctypes.c_int


def _decl(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


# Every function the binding uses, with its exact prototype.
_PROTOS = {
    'iadsr_version_number': (_C_INT,),
    'iadsr_version_string': (_S,),
    'iadsr_build_info': (_S,),
    'iadsr_format_version': (_C_INT,),
    'iadsr_strerror': (_S, _C_INT),
    'iadsr_status_name': (_S, _C_INT),
    'iadsr_last_error': (_S,),
    'iadsr_clear_error': (None,),
    # datasets
    'iadsr_dataset_create': (_C_INT, _PP, _P, _P, _i64, _i32, _u32),
    'iadsr_dataset_parse_text': (_C_INT, _PP, _P, _SZ, _i32, _S),
    'iadsr_dataset_load_text': (_C_INT, _PP, _S, _i32),
    'iadsr_dataset_free': (None, _P),
    'iadsr_dataset_n_users': (_i64, _P),
    'iadsr_dataset_n_items': (_i32, _P),
    'iadsr_dataset_n_interactions': (_i64, _P),
    'iadsr_dataset_user_items': (_P, _P, _i64, ctypes.POINTER(_i32)),
    'iadsr_dataset_user_id': (_i64, _P, _i64),
    # models
    'iadsr_model_params_init': (None, _P),
    'iadsr_model_create': (_C_INT, _PP, ctypes.POINTER(ModelParams)),
    'iadsr_model_create_from_embeddings': (
        _C_INT, _PP, ctypes.POINTER(ModelParams), _P, _i64, _i32, _i64),
    'iadsr_model_free': (None, _P),
    'iadsr_model_get_params': (_C_INT, _P, ctypes.POINTER(ModelParams)),
    'iadsr_model_backbone': (_i32, _P),
    'iadsr_model_n_items': (_i32, _P),
    'iadsr_model_dim': (_i32, _P),
    'iadsr_model_max_seq_len': (_i32, _P),
    'iadsr_model_n_params': (_i64, _P),
    'iadsr_model_memory_usage': (_SZ, _P),
    'iadsr_model_item_embeddings': (_P, _P),
    'iadsr_model_with_item_ids': (_C_INT, _PP, _P,
                                  ctypes.POINTER(ctypes.c_char_p), _i32),
    'iadsr_model_item_id': (_S, _P, _i32),
    'iadsr_model_item_index': (_i32, _P, _S),
    'iadsr_model_history_repeats': (_i32, _P),
    'iadsr_model_save': (_C_INT, _P, _S, _u32),
    'iadsr_model_save_to_buffer': (_C_INT, _P, _P, _SZ,
                                   ctypes.POINTER(_SZ)),
    'iadsr_model_load': (_C_INT, _PP, _S, _u32),
    'iadsr_model_load_from_buffer': (_C_INT, _PP, _P, _SZ, _u32),
    # training
    'iadsr_train_params_init': (None, _P),
    'iadsr_trainer_create': (_C_INT, _PP, _P, _P,
                             ctypes.POINTER(TrainParams)),
    'iadsr_trainer_free': (None, _P),
    'iadsr_trainer_run_epoch': (_C_INT, _P, ctypes.POINTER(_f64)),
    'iadsr_trainer_fit': (_C_INT, _P, _PROGRESS_FN, _P),
    'iadsr_trainer_snapshot': (_C_INT, _P, _PP),
    'iadsr_trainer_epochs_done': (_i32, _P),
    # contexts
    'iadsr_ctx_params_init': (None, _P),
    'iadsr_ctx_create': (_C_INT, _PP, _P, ctypes.POINTER(CtxParams)),
    'iadsr_ctx_free': (None, _P),
    'iadsr_ctx_model': (_P, _P),
    'iadsr_ctx_score': (_C_INT, _P, _P, _i32, _P, _i64),
    'iadsr_ctx_score_batch': (_C_INT, _P, _P, _P, _i64, _P, _i64),
    'iadsr_ctx_topk': (_C_INT, _P, _P, _i32, _i32, _u32, _P, _P),
    'iadsr_ctx_topk_batch': (_C_INT, _P, _P, _P, _i64, _i32, _u32, _P, _P),
    'iadsr_ctx_user_vector': (_C_INT, _P, _P, _i32, _P),
    'iadsr_ctx_user_vector_batch': (_C_INT, _P, _P, _P, _i64, _P),
    # evaluation
    'iadsr_eval_params_init': (None, _P),
    'iadsr_evaluate': (_C_INT, _P, _P, ctypes.POINTER(EvalParams),
                       ctypes.POINTER(Metrics)),
    'iadsr_evaluate_ranks': (_C_INT, _P, _P, ctypes.POINTER(EvalParams),
                             _P, _P, _i64, ctypes.POINTER(_i64)),
    # semantic matrices and .npy
    'iadsr_semantic_create': (_C_INT, _PP, _P, _i64, _i32, _i64, _u32),
    'iadsr_semantic_parse_npy': (_C_INT, _PP, _P, _SZ, _u32),
    'iadsr_semantic_load_npy': (_C_INT, _PP, _S, _u32),
    'iadsr_semantic_save_npy': (_C_INT, _P, _S, _u32),
    'iadsr_semantic_free': (None, _P),
    'iadsr_semantic_n_items': (_i32, _P),
    'iadsr_semantic_dim': (_i32, _P),
    'iadsr_semantic_n_zero_rows': (_i32, _P),
    'iadsr_semantic_row': (_P, _P, _i32),
    'iadsr_semantic_check': (_C_INT, _P, _i32, _i32),
    'iadsr_semantic_scores': (_C_INT, _P, _P, _i32, _P, _i64),
    'iadsr_semantic_evaluate': (_C_INT, _P, _P, ctypes.POINTER(EvalParams),
                                ctypes.POINTER(Metrics)),
    'iadsr_npy_decode': (_C_INT, _P, _SZ, _P, _i64, ctypes.POINTER(_i64),
                         ctypes.POINTER(_i64)),
    'iadsr_npy_save': (_C_INT, _S, _P, _i64, _i64, _i64, _u32),
    # IADSR
    'iadsr_denoise_params_init': (None, _P),
    'iadsr_aligner_create': (_C_INT, _PP, _i32, _i32,
                             ctypes.POINTER(DenoiseParams)),
    'iadsr_aligner_free': (None, _P),
    'iadsr_aligner_dim': (_i32, _P),
    'iadsr_aligner_semantic_dim': (_i32, _P),
    'iadsr_aligner_project': (_C_INT, _P, _i32, _P, _P),
    'iadsr_gate_create': (_C_INT, _PP, _i32, ctypes.POINTER(DenoiseParams)),
    'iadsr_gate_with_params': (_C_INT, _PP, _P,
                               ctypes.POINTER(DenoiseParams)),
    'iadsr_gate_free': (None, _P),
    'iadsr_gate_dim': (_i32, _P),
    'iadsr_gate_get_params': (_C_INT, _P, ctypes.POINTER(DenoiseParams)),
    'iadsr_trainer_create_joint': (_C_INT, _PP, _P, _P, _P, _P,
                                   ctypes.POINTER(TrainParams),
                                   ctypes.POINTER(DenoiseParams)),
    'iadsr_trainer_snapshot_denoiser': (_C_INT, _P, _PP, _PP),
    'iadsr_denoiser_create': (_C_INT, _PP, _P, _P, _P, _P),
    'iadsr_denoiser_create_v2': (_C_INT, _PP, _P, _P, _P, _P, _u32),
    'iadsr_denoiser_free': (None, _P),
    'iadsr_denoiser_clean': (_C_INT, _P, _P, _i32, _P, _P, _P, _P,
                             ctypes.POINTER(_i32)),
    'iadsr_denoiser_clean_dataset': (_C_INT, _P, _P, _i32, _P, _i32, _PP,
                                     _P, _P),
    'iadsr_denoiser_propose_theta': (_C_INT, _P, _P, _i32, _P, _i32,
                                     ctypes.POINTER(ctypes.c_float),
                                     ctypes.POINTER(ctypes.c_double)),
    'iadsr_checkpoint_save': (_C_INT, _P, _P, _P, _S, _u32),
    'iadsr_checkpoint_load': (_C_INT, _PP, _PP, _PP, _S, _u32),
    'iadsr_checkpoint_load_from_buffer': (_C_INT, _PP, _PP, _PP, _P, _SZ,
                                          _u32),
    'iadsr_pipeline': (_C_INT, _P, _P, ctypes.POINTER(ModelParams),
                       ctypes.POINTER(TrainParams),
                       ctypes.POINTER(DenoiseParams), _PROGRESS_FN, _P,
                       ctypes.POINTER(PipelineResult), _PP, _PP),
}


class _Functions:
    pass


_f = _Functions()
for _name, _proto in _PROTOS.items():
    setattr(_f, _name[len('iadsr_'):], _decl(_name, _proto[0], *_proto[1:]))
del _name, _proto

# Since 0.4: bound when the loaded library has them (a 0.3 library still
# loads; the features that need them say so).
_PROTOS_0_4 = {
    'iadsr_trainer_checksum': (_C_INT, _P, ctypes.POINTER(ctypes.c_uint64)),
}
for _name, _proto in _PROTOS_0_4.items():
    if hasattr(_lib, _name):
        setattr(_f, _name[len('iadsr_'):],
                _decl(_name, _proto[0], *_proto[1:]))
del _name, _proto

# iadsr_allreduce_fn (since 0.4): sum a buffer over the ranks, in place
_ALLREDUCE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p,
                                 ctypes.c_size_t, ctypes.c_int32,
                                 ctypes.c_void_p)
_TYPE_F32, _TYPE_F64 = 1, 2


def _allreduce_callback(fn, errors):
    """Wrap fn(buf) (sums buf over the ranks in place: a float32 or float64
    numpy array, or without numpy a memoryview of format 'f' or 'd') as an
    iadsr_allreduce_fn; an exception is kept in errors and fails the
    library's call."""
    def cb(buf, count, typ, user):
        try:
            if typ not in (_TYPE_F32, _TYPE_F64):
                raise ValueError('unknown collective element type %d' % typ)
            ct = ctypes.c_float if typ == _TYPE_F32 else ctypes.c_double
            arr = (ct * count).from_address(buf)
            if np is not None:
                view = np.frombuffer(
                    arr, dtype=np.float32 if typ == _TYPE_F32 else np.float64)
            else:
                view = memoryview(arr).cast('B').cast(
                    'f' if typ == _TYPE_F32 else 'd')
            fn(view)
            return 0
        except BaseException as e:  # noqa: B902 - re-raised by the caller
            errors.append(e)
            return -1
    return _ALLREDUCE_FN(cb)

# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def _text(b):
    return b.decode('utf-8', 'replace') if b is not None else ''


def version():
    """Version string of the loaded library, e.g. '0.3.0'."""
    return _text(_f.version_string())


def version_number():
    """MAJOR*10000 + MINOR*100 + PATCH of the loaded library."""
    return _f.version_number()


def build_info():
    return _text(_f.build_info())


def format_version():
    """Newest checkpoint format, major*100 + minor."""
    return _f.format_version()


def strerror(status):
    return _text(_f.strerror(status))


def status_name(status):
    return _text(_f.status_name(status))


def last_error():
    """The calling thread's last-error detail ('' when none)."""
    return _text(_f.last_error())


def clear_error():
    _f.clear_error()


class IadsrError(Exception):
    """A libiadsr call failed.

    Attributes: status (int, negative), name ('IADSR_ERR_...'), detail
    (iadsr_last_error() read right after the failing call), call (the C
    function name), message (iadsr_strerror()).
    """

    def __init__(self, call, status, detail, name=None, message=None):
        self.call = call
        self.status = status
        self.detail = detail
        self.name = name if name is not None else status_name(status)
        self.message = message if message is not None else strerror(status)
        super().__init__(call, status, detail)

    def __str__(self):
        return '%s: %s: %s' % (self.call, self.name,
                               self.detail or self.message)


def _call(name, *args):
    """Call iadsr_<name>; raise IadsrError on a non-zero status."""
    _f.clear_error()  # so the detail surely belongs to this call
    st = getattr(_f, name)(*args)
    if st != OK:
        # Read the detail first: any later library call may replace it.
        detail = _text(_f.last_error())
        raise IadsrError('iadsr_' + name, st, detail)
    return st


# ---------------------------------------------------------------------------
# Params structs
# ---------------------------------------------------------------------------

_INIT_FN = {ModelParams: 'model_params_init', TrainParams: 'train_params_init',
            CtxParams: 'ctx_params_init', EvalParams: 'eval_params_init',
            DenoiseParams: 'denoise_params_init'}

_INIT_SLACK = 512  # room for a newer library's larger struct


def _init_raw(cls):
    """Run the library's _init into a roomy buffer.

    Returns (struct, struct_size the library wrote).  The buffer is larger
    than our mirror so a newer library that writes more fields cannot
    overrun it; our struct then carries our own size, which the library
    accepts (older callers get defaults for the newer fields).
    """
    buf = ctypes.create_string_buffer(ctypes.sizeof(cls) + _INIT_SLACK)
    getattr(_f, _INIT_FN[cls])(ctypes.addressof(buf))
    lib_size = _u32.from_buffer(buf).value
    s = cls.from_buffer_copy(buf)
    s.struct_size = ctypes.sizeof(cls)
    return s, lib_size


def struct_sizes():
    """{name: (sizeof in this binding, struct_size written by _init)}."""
    return {cls.__name__: (ctypes.sizeof(cls), _init_raw(cls)[1])
            for cls in _INIT_FN}


def _int_in(value, ctype, what):
    v = operator.index(value)
    bits = ctypes.sizeof(ctype) * 8
    signed = ctype(-1).value == -1
    lo, hi = ((-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed
              else (0, (1 << bits) - 1))
    if not lo <= v <= hi:
        raise ValueError('%s = %d does not fit %s' % (what, v,
                                                      ctype.__name__))
    return v


def _set_fields(s, kw, skip=('struct_size',)):
    """Set struct fields from kwargs with range-checked integers (ctypes
    would silently truncate)."""
    types = dict(s._fields_)
    for key, value in kw.items():
        if key in skip or key not in types:
            raise TypeError('unknown parameter %r' % key)
        t = types[key]
        if t in (_f32, _f64):
            setattr(s, key, float(value))
        else:
            setattr(s, key, _int_in(value, t, key))
    return s


def _enum(value, table, what):
    if isinstance(value, str):
        try:
            return table[value.lower()]
        except KeyError:
            raise ValueError('unknown %s %r (one of %s)' %
                             (what, value, ', '.join(sorted(table))))
    return value


def _name_of(value, table):
    for k, v in table.items():
        if v == value and k != 'leave_one_out':
            return k
    return value


def _model_params(n_items=None, **kw):
    p, _ = _init_raw(ModelParams)
    if n_items is not None:
        kw['n_items'] = n_items
    if 'backbone' in kw:
        kw['backbone'] = _enum(kw['backbone'], BACKBONES, 'backbone')
    if 'activation' in kw:
        kw['activation'] = _enum(kw['activation'], ACTIVATIONS, 'activation')
    pre_ln = kw.pop('pre_ln', None)
    _set_fields(p, kw)
    if pre_ln is not None:
        p.flags = (p.flags | _MODEL_F_PRE_LN) if pre_ln else \
            (p.flags & ~_MODEL_F_PRE_LN)
    return p


def _train_params(kw):
    p, _ = _init_raw(TrainParams)
    kw = dict(kw)
    if 'split' in kw:
        kw['split'] = _enum(kw['split'], SPLITS, 'split')
    return _set_fields(p, kw)


def _collective_args(kw):
    """Split allreduce / rank / n_ranks off the training kwargs."""
    kw = dict(kw)
    fn = kw.pop('allreduce', None)
    rank = kw.pop('rank', 0)
    n_ranks = kw.pop('n_ranks', 1)
    if fn is None:
        if rank != 0 or n_ranks != 1:
            raise ValueError('rank and n_ranks need allreduce=')
        return kw, None
    if not callable(fn):
        raise TypeError('allreduce must be callable')
    if not hasattr(_f, 'trainer_checksum'):
        raise IadsrError('iadsr_trainer_create', ERR_UNSUPPORTED,
                         'distributed training needs libiadsr 0.4 '
                         '(loaded: %s)' % version())
    errors = []
    return kw, {'cb': _allreduce_callback(fn, errors), 'errors': errors,
                'rank': rank, 'n_ranks': n_ranks}


def _set_collective(p, coll):
    if coll is None:
        return
    p.allreduce = ctypes.cast(coll['cb'], ctypes.c_void_p).value
    p.rank = _int_in(coll['rank'], _i32, 'rank')
    p.n_ranks = _int_in(coll['n_ranks'], _i32, 'n_ranks')


def _denoise_params(kw, base=None):
    if base is None:
        p, _ = _init_raw(DenoiseParams)
    else:
        p = base
    kw = dict(kw or {})
    for key, bit in (('collab_only', _DENOISE_F_COLLAB_ONLY),
                     ('carry_masks', _DENOISE_F_CARRY_MASKS),
                     ('paper_losses', _DENOISE_F_PAPER),
                     ('detect', _DENOISE_F_DETECT),
                     ('holdout', _DENOISE_F_HOLDOUT),
                     ('clean_scores', _DENOISE_F_CLEAN_SCORES),
                     ('input_mask', _DENOISE_F_INPUT_MASK),
                     ('backoff', _DENOISE_F_BACKOFF),
                     ('text_feature', _DENOISE_F_TEXT)):
        if key in kw:
            on = kw.pop(key)
            flags = kw.get('flags', p.flags)
            kw['flags'] = (flags | bit) if on else (flags & ~bit)
    if 'protect_last' in kw:
        kw['protect_last'] = int(bool(kw['protect_last']))
    return _set_fields(p, kw)


def _struct_dict(s, skip=('struct_size', 'reserved0', 'reserved1')):
    return {k: getattr(s, k) for k, _ in s._fields_ if k not in skip}


def _eval_params(target='test', n_threads=1, exclude_history=False):
    p, _ = _init_raw(EvalParams)
    return _set_fields(p, {
        'target': _enum(target, TARGETS, 'target'),
        'n_threads': n_threads,
        'flags': _TOPK_EXCLUDE_HISTORY if exclude_history else 0})


# The metric names of `iadsr eval --json` / `iadsr popularity --json`
# ('users', 'HR@K', 'NDCG@K', 'MRR') are the names of every metrics dict of
# the binding.  The names of earlier versions (the iadsr_metrics fields)
# stay as aliases with the same values: alias -> name.
METRIC_ALIASES = {'n_users': 'users', 'hr5': 'HR@5', 'hr10': 'HR@10',
                  'hr20': 'HR@20', 'ndcg5': 'NDCG@5', 'ndcg10': 'NDCG@10',
                  'ndcg20': 'NDCG@20'}


def _with_aliases(out):
    for alias, name in METRIC_ALIASES.items():
        out[alias] = out[name]
    return out


def _metrics_dict(m):
    """An iadsr_metrics as a dict: the CLI's names in its order, then the
    aliases (no MRR: iadsr_metrics does not hold it)."""
    out = {'users': m.n_users}
    for k in (5, 10, 20):
        out['HR@%d' % k] = getattr(m, 'hr%d' % k)
    for k in (5, 10, 20):
        out['NDCG@%d' % k] = getattr(m, 'ndcg%d' % k)
    return _with_aliases(out)


def metrics_from_ranks(ranks, ks=(5, 10, 20)):
    """Metrics from 0-based target ranks (those of evaluate_ranks()), with
    the keys of `iadsr eval --k LIST --json`, in its order: 'users', then
    'HR@K' for each K of ks, 'NDCG@K' for each K, then 'MRR'.  HR@K =
    mean([rank < K]), NDCG@K = mean([rank < K] / log2(rank + 2)), MRR =
    mean(1 / (rank + 1)), summed in the given order and scaled by 1/n as
    the library and the CLI do: for K = 5, 10, 20 the very numbers of
    iadsr_evaluate, and MRR the very number of `iadsr eval`.  ks: distinct
    integers >= 1.  No ranks: every metric 0.0."""
    ks = list(ks)
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError('ks: cut-offs must be integers >= 1, got %r'
                             % (k,))
    if len(set(ks)) != len(ks):
        raise ValueError('ks: a cut-off is given twice: %r' % (ks,))
    rs = ranks.tolist() if hasattr(ranks, 'tolist') else list(ranks)
    n_k = len(ks)
    kmax = max(ks) if ks else 0
    hr = [0.0] * n_k
    nd = [0.0] * n_k
    mrr = 0.0
    log2 = math.log2
    for r in rs:
        if r < kmax:
            g = 1.0 / log2(r + 2.0)
            for q in range(n_k):
                if r < ks[q]:
                    hr[q] += 1.0
                    nd[q] += g
        mrr += 1.0 / (r + 1.0)
    n = len(rs)
    inv = 1.0 / n if n > 0 else 0.0
    out = {'users': n}
    for q, k in enumerate(ks):
        out['HR@%d' % k] = hr[q] * inv
    for q, k in enumerate(ks):
        out['NDCG@%d' % k] = nd[q] * inv
    out['MRR'] = mrr * inv
    return out


def _new_metrics():
    m = Metrics()
    m.struct_size = ctypes.sizeof(Metrics)
    return m

# ---------------------------------------------------------------------------
# Buffers: zero-copy where possible, one conversion otherwise
# ---------------------------------------------------------------------------


CSR = collections.namedtuple('CSR', 'items offsets')
CSR.__doc__ = """Sequences in CSR form: user u's items are
items[offsets[u]:offsets[u+1]] (offsets has n_users + 1 entries)."""


def _np_native(a, dtype):
    return (a.dtype == dtype and a.dtype.isnative and a.flags.c_contiguous
            and a.flags.aligned)


def _int_input(x, dtype_np, code, what):
    """1-D integer input -> (address, length, keepalive, copied).

    int32/int64 numpy arrays of the right dtype that are C-contiguous, and
    array.array of the right type code, are passed by pointer.  Without
    numpy the keepalive is a memoryview of the array.array: while it lives
    the array cannot be resized (BufferError), so the address stays valid
    for as long as the library may read it.
    """
    if np is not None:
        if isinstance(x, array.array) and x.typecode == code and len(x):
            x = np.frombuffer(x, dtype_np)  # a view: still no copy
        if isinstance(x, np.ndarray) and x.ndim == 1 and \
                _np_native(x, dtype_np):
            return x.ctypes.data, x.size, x, False
        a = np.asarray(x)
        if a.ndim != 1:
            raise ValueError('%s must be 1-D, got shape %s' % (what, a.shape))
        if a.size == 0:
            a = np.zeros(0, dtype_np)
        elif a.dtype.kind not in 'iu':
            raise TypeError('%s must hold integers, got %s' % (what, a.dtype))
        elif a.dtype != dtype_np:
            info = np.iinfo(dtype_np)
            if a.min() < info.min or a.max() > info.max:
                raise OverflowError('%s has a value outside %s' %
                                    (what, np.dtype(dtype_np).name))
        # 'A': aligned too (a contiguous but unaligned array would pass
        # through ascontiguousarray unchanged)
        a = np.require(a, dtype_np, ['C', 'A'])
        return a.ctypes.data, a.size, a, True
    if isinstance(x, array.array) and x.typecode == code:
        return x.buffer_info()[0], len(x), memoryview(x), False
    a = array.array(code, x)  # checks range and type
    return a.buffer_info()[0], len(a), memoryview(a), True


def _i32_input(x, what='seq'):
    return _int_input(x, np.int32 if np is not None else None, _I32, what)


def _i64_input(x, what='offsets'):
    return _int_input(x, np.int64 if np is not None else None, _I64, what)


def _f32_vector(x, n, what):
    """1-D float32 input of length n -> (address, keepalive)."""
    if np is not None:
        if isinstance(x, np.ndarray) and x.ndim == 1 and \
                _np_native(x, np.float32):
            a = x
        else:
            a = np.require(np.asarray(x), np.float32, ['C', 'A'])
        if a.shape != (n,):
            raise ValueError('%s must have shape (%d,), got %s' %
                             (what, n, a.shape))
        return a.ctypes.data, a
    if isinstance(x, array.array) and x.typecode == 'f':
        a = x
    else:
        a = array.array('f', x)
    if len(a) != n:
        raise ValueError('%s must have %d values, got %d' % (what, n, len(a)))
    return a.buffer_info()[0], memoryview(a)  # the view blocks resizing


_BORROW_F32 = ('%s: borrow=True needs a float32 matrix the library can '
               'use in place: %s; got %s.  Pass borrow=False to let the '
               'binding copy (and convert) it')


def _f32_rows_usable(a):
    """True when the library can read numpy array a in place: native,
    aligned float32 whose rows are contiguous (C order, or a column slice
    of a C-ordered array); its row stride is then the leading dimension."""
    return (a.dtype == np.float32 and a.dtype.isnative and a.flags.aligned
            and a.strides[1] == 4 and a.strides[0] % 4 == 0 and
            a.strides[0] >= 4 * a.shape[1])


def _describe(x):
    """A short description of an input, for error messages."""
    if np is not None and isinstance(x, np.ndarray):
        layout = 'C-contiguous' if x.flags.c_contiguous else \
            'Fortran-order' if x.flags.f_contiguous else 'non-contiguous'
        dtype = x.dtype.name if x.dtype.isnative else x.dtype.str
        return 'a %s%s %s array of shape %s' % (
            layout, '' if x.flags.aligned else ', unaligned', dtype, x.shape)
    if isinstance(x, array.array):
        return "array.array('%s')" % x.typecode
    return 'a %s' % type(x).__name__


def _f32_matrix(x, what, borrow=False):
    """2-D float32 input -> (address, n_rows, n_cols, ld, keepalive).

    A numpy float32 array whose rows are contiguous is passed as is, with
    its row stride as the leading dimension (a row slice needs no copy).
    Anything else is converted (copied) once, unless borrow=True: the caller
    asked for zero-copy, so a conversion raises ValueError instead of
    silently lending the library a private copy.  Without numpy only
    (array.array('f'), (rows, cols)) is used in place.
    """
    if np is not None:
        a = x if isinstance(x, np.ndarray) else np.asarray(x)
        if a.ndim != 2:
            raise ValueError('%s must be 2-D, got shape %s' % (what, a.shape))
        if not isinstance(x, np.ndarray) or not _f32_rows_usable(a):
            if borrow:
                raise ValueError(_BORROW_F32 % (
                    what, 'a numpy float32 array (native byte order, '
                    'aligned) with contiguous rows, i.e. C-contiguous or a '
                    'column slice of a C-contiguous array; use '
                    'np.ascontiguousarray(x, dtype=np.float32)',
                    _describe(x)))
            a = np.require(a, np.float32, ['C', 'A'])
        ld = a.strides[0] // 4 if a.shape[0] > 1 else max(a.shape[1], 1)
        return a.ctypes.data, a.shape[0], a.shape[1], ld, a
    if isinstance(x, tuple) and len(x) == 2 and \
            isinstance(x[0], array.array):
        flat, (rows, cols) = x  # (flat array('f'), (rows, cols))
        rows, cols = operator.index(rows), operator.index(cols)
        if flat.typecode != 'f' or rows < 0 or cols < 0 or \
                len(flat) != rows * cols:
            raise ValueError('%s: flat array does not match its shape' % what)
        # the memoryview blocks resizing while the library may read flat
        return flat.buffer_info()[0], rows, cols, cols, memoryview(flat)
    if borrow:
        raise ValueError(_BORROW_F32 % (
            what, "(array.array('f'), (rows, cols)) without numpy",
            _describe(x)))
    rows = [list(r) for r in x]
    cols = len(rows[0]) if rows else 0
    if any(len(r) != cols for r in rows):
        raise ValueError('%s: rows have different lengths' % what)
    flat = array.array('f')
    for r in rows:
        flat.extend(float(v) for v in r)
    return flat.buffer_info()[0], len(rows), cols, cols, flat


def _bytes_input(b):
    """Bytes-like input -> (address, length, keepalive)."""
    if isinstance(b, bytes):
        p = ctypes.c_char_p(b)  # points into the bytes object, no copy
        return ctypes.cast(p, ctypes.c_void_p).value, len(b), (b, p)
    if np is not None and isinstance(b, np.ndarray):
        if not b.flags.c_contiguous:
            b = np.ascontiguousarray(b)
        return b.ctypes.data, b.nbytes, b
    mv = memoryview(b)
    if not mv.c_contiguous or mv.readonly:
        data = bytes(mv)
        return _bytes_input(data)
    mv = mv.cast('B')
    arr = (ctypes.c_char * len(mv)).from_buffer(mv)
    return ctypes.addressof(arr), len(mv), (mv, arr)


_NP_DTYPES = {'f': 'float32', _I32: 'int32', _I64: 'int64', 'B': 'uint8'}


def _out_buffer(out, code, shape, what):
    """An output buffer -> (object, address).

    numpy mode: a new or validated C-contiguous, aligned, writable ndarray
    of `shape` and the dtype of `code`.  stdlib mode: a new or validated
    array.array of prod(shape) entries (row-major); the address is then a
    ctypes array over it (pass it as the pointer argument and keep it until
    the call returns), whose buffer export stops the array from being
    resized (BufferError) while the library writes into it.  A buffer of
    any other shape, type or layout raises ValueError: the library is never
    handed a buffer it could write past.
    """
    n = 1
    for s in shape:
        n *= s
    if np is not None:
        dtype = np.dtype(_NP_DTYPES[code])
        if out is None:
            out = np.empty(shape, dtype)
        else:
            if not isinstance(out, np.ndarray):
                raise ValueError('%s must be a numpy array' % what)
            if out.dtype != dtype or not out.dtype.isnative:
                raise ValueError('%s must have dtype %s, got %s' %
                                 (what, dtype, out.dtype))
            if out.shape != tuple(shape):
                raise ValueError('%s must have shape %s, got %s' %
                                 (what, tuple(shape), out.shape))
            if not out.flags.c_contiguous:
                raise ValueError('%s must be C-contiguous' % what)
            if not out.flags.aligned:
                raise ValueError('%s must be aligned' % what)
            if not out.flags.writeable:
                raise ValueError('%s must be writable' % what)
        return out, out.ctypes.data
    if out is None:
        out = array.array(code, bytes(array.array(code).itemsize * n))
    else:
        if not isinstance(out, array.array) or out.typecode != code:
            raise ValueError("%s must be an array.array('%s')" % (what, code))
        if len(out) != n:
            raise ValueError('%s must have %d entries, got %d' %
                             (what, n, len(out)))
    return out, (ctypes.c_char * (n * out.itemsize)).from_buffer(out)


def _check_offsets(offsets, n_entries):
    """Raise ValueError unless the library, trusting the CSR arrays, reads
    only inside them: offsets has n_users + 1 >= 1 entries, offsets[0] ==
    0, offsets never decrease, and offsets[-1] == len(items) (the header's
    contract for iadsr_dataset_create() and iadsr_ctx_*_batch(): items has
    length offsets[n_users]).  offsets is the int64 array the library will
    read (numpy array, or memoryview without numpy); n_entries is
    len(items)."""
    n = len(offsets)
    if n < 1:
        raise ValueError('offsets must have n_users + 1 entries, got an '
                         'empty array')
    if offsets[0] != 0:
        raise ValueError('offsets[0] = %d, must be 0' % offsets[0])
    if np is not None:
        dec = np.flatnonzero(offsets[1:] < offsets[:-1])
        bad = int(dec[0]) if dec.size else -1
    else:
        bad, prev = -1, 0
        for u in range(1, n):
            cur = offsets[u]
            if cur < prev:
                bad = u - 1
                break
            prev = cur
    if bad >= 0:
        raise ValueError('offsets decrease at user %d: offsets[%d] = %d > '
                         'offsets[%d] = %d' % (bad, bad, offsets[bad],
                                               bad + 1, offsets[bad + 1]))
    if offsets[n - 1] != n_entries:
        raise ValueError('offsets[-1] = %d but items has %d entries; they '
                         'must be equal (user u\'s items are '
                         'items[offsets[u]:offsets[u + 1]])' %
                         (offsets[n - 1], n_entries))


def _csr_arrays(items, offsets):
    """CSR arrays -> (items_addr, offsets_addr, n_users, keepalive, copied),
    validated by _check_offsets() before any library call sees them."""
    ia, ni, ik, ic = _i32_input(items, 'items')
    oa, no, ok, oc = _i64_input(offsets, 'offsets')
    _check_offsets(ok, ni)
    return ia, oa, no - 1, (ik, ok), ic or oc


def _csr_input(seqs):
    """Sequences (a list of sequences or a CSR) -> (items_addr, off_addr,
    n_users, keepalive).  A CSR is validated (_check_offsets)."""
    if isinstance(seqs, CSR):
        return _csr_arrays(seqs.items, seqs.offsets)[:4]
    items, offsets = _build_csr(seqs)
    return _csr_arrays(items, offsets)[:4]


def _build_csr(seqs):
    seqs = list(seqs)
    if np is not None:
        parts = [_int_input(s, np.int32, _I32, 'sequence')[2] for s in seqs]
        offsets = np.zeros(len(parts) + 1, np.int64)
        if parts:
            np.cumsum([p.size for p in parts], out=offsets[1:])
            items = np.concatenate(parts).astype(np.int32, copy=False)
        else:
            items = np.zeros(0, np.int32)
        return np.ascontiguousarray(items), offsets
    items, offsets = array.array(_I32), array.array(_I64, [0])
    for s in seqs:
        items.extend(s if isinstance(s, array.array) and s.typecode == _I32
                     else array.array(_I32, s))
        offsets.append(len(items))
    return items, offsets


def _as_bool(keep):
    return keep.view(np.bool_) if np is not None else keep

# ---------------------------------------------------------------------------
# Handle ownership
# ---------------------------------------------------------------------------


class ConcurrentUseError(RuntimeError):
    """A Context (or Trainer) was called from a second thread while a call
    on another thread was still running.  The library requires such
    handles to be used by one thread at a time, so the second call is
    refused instead of letting both share the handle's scratch memory
    (which silently gives wrong results).  Create a Context per thread."""


class _Handle:
    """Owns one library handle, with a count of its users.

    A user is an in-flight library call (_Using) or a borrowed view of the
    handle's memory (_Pin).  close() marks the handle closed at once (no new
    user can start: acquire() raises ValueError) and frees it when the count
    is zero; otherwise the last user to finish frees it.  So close() never
    waits and never frees memory a running call or a live view still uses.
    """

    __slots__ = ('ptr', '_free', '_pins', '_closing', '_lock')

    def __init__(self, ptr, free):
        self.ptr = ptr
        self._free = free
        self._pins = 0
        self._closing = False
        # re-entrant: a finaliser (_Pin.__del__) run by the garbage
        # collector while this thread holds the lock must not deadlock
        self._lock = threading.RLock()

    def acquire(self, what='object'):
        """Count one more user and return the pointer; ValueError when the
        handle is closed (or closing)."""
        with self._lock:
            if self._closing or not self.ptr:
                raise ValueError('%s is closed' % what)
            self._pins += 1
            return self.ptr

    def unpin(self):
        with self._lock:
            self._pins -= 1
            self._release_locked()

    def close(self):
        with self._lock:
            self._closing = True
            self._release_locked()

    def _release_locked(self):
        if self._closing and self._pins == 0 and self.ptr:
            p, self.ptr = self.ptr, None
            self._free(p)

    def __del__(self):
        # no user can be left: each holds a reference to this object
        p, self.ptr = self.ptr, None
        if p:
            try:
                self._free(p)
            except Exception:  # interpreter shutdown
                pass


class _Pin:
    """Keeps a handle's memory valid while a borrowed view exists.
    Raises ValueError when the handle is already closed."""

    __slots__ = ('_h',)

    def __init__(self, h, what='object'):
        h.acquire(what)
        self._h = h  # set only once acquired: __del__ then unpins

    def __del__(self):
        try:
            self._h.unpin()
        except Exception:
            pass


def _handle_of(obj):
    """obj's _Handle; ValueError when obj is closed, TypeError when it is
    not a libiadsr object."""
    if not isinstance(obj, _Object):
        raise TypeError('expected a libiadsr object (Model, Dataset, ...), '
                        'got %s' % type(obj).__name__)
    h = getattr(obj, '_h', None)
    if h is None:
        raise ValueError('%s is closed' % type(obj).__name__)
    return h


class _Using:
    """Context manager around one library call that uses the handles of
    objs (None entries allowed: a NULL argument).

    __enter__ pins every handle (so a concurrent close() defers the free
    until the call is over) and returns their pointers, in order (None for
    None).  With busy (an RLock) it first takes busy without waiting: a
    second thread gets ConcurrentUseError.
    """

    __slots__ = ('_objs', '_held', '_busy', '_single')

    def __init__(self, objs, busy=None, single=False):
        self._objs = objs
        self._held = []
        self._busy = busy
        self._single = single

    def __enter__(self):
        busy = self._busy
        if busy is not None and not busy.acquire(blocking=False):
            obj = self._objs[0]
            raise ConcurrentUseError(
                '%s is in use by another thread: %s' %
                (type(obj).__name__, obj._busy_hint))
        try:
            ptrs = []
            for o in self._objs:
                if o is None:
                    ptrs.append(None)
                    continue
                h = _handle_of(o)
                ptrs.append(h.acquire(type(o).__name__))
                self._held.append(h)
        except BaseException:
            self._release()
            raise
        return ptrs[0] if self._single else ptrs

    def __exit__(self, *exc):
        self._release()

    def _release(self):
        held, self._held = self._held, []
        for h in held:
            h.unpin()
        if self._busy is not None:
            self._busy.release()
            self._busy = None


def _using(*objs):
    """Pin the handles of objs for one call: with _using(m, d) as (mp, dp)."""
    return _Using(objs)


class _Object:
    """Base of the handle-owning classes: close(), with, __del__.

    Every method that calls the library runs inside self._use() (or
    _using() for several objects), which pins the handle for the call:
    close() from another thread (or from a callback) while a call runs
    returns at once, later calls raise ValueError, and the handle is freed
    when the last running call returns.
    """

    _free_name = None
    # Classes whose handles the header allows one thread at a time set
    # _one_thread; their calls go through _exclusive().
    _one_thread = False
    _busy_hint = ''

    @classmethod
    def _wrap(cls, ptr, deps=()):
        """An object of this class owning the new handle ptr (None for a
        NULL handle, e.g. a component a checkpoint does not have)."""
        if not ptr:
            return None
        self = cls.__new__(cls)
        _Object.__init__(self, ptr, deps)
        return self

    def __init__(self, ptr, deps=()):
        # Python objects whose memory the C handle may borrow; kept for the
        # whole life of this object (never dropped by close(), because
        # other C handles may still reference ours).
        self._deps = tuple(d for d in deps if d is not None)
        self._busy = threading.RLock() if self._one_thread else None
        self._h = _Handle(ptr, getattr(_f, self._free_name))

    def _use(self):
        """with self._use() as ptr: the handle, pinned for the call."""
        return _Using((self,), single=True)

    def _exclusive(self):
        """As _use(), and refuse (ConcurrentUseError) a call while another
        thread is inside one (re-entry from the same thread, e.g. from a
        progress callback, is allowed)."""
        return _Using((self,), busy=self._busy, single=True)

    @property
    def _ptr(self):
        """The raw pointer, NOT pinned: for identity checks only (calls go
        through _use())."""
        h = getattr(self, '_h', None)
        if h is None or not h.ptr:
            raise ValueError('%s is closed' % type(self).__name__)
        return h.ptr

    @property
    def closed(self):
        h = getattr(self, '_h', None)
        return h is None or not h.ptr

    def close(self):
        """Release the handle (idempotent).  Objects created from this one
        keep what they need alive inside the library.

        Safe at any time: calls already running on this object (on other
        threads, or the call whose callback runs close()) finish normally,
        and the handle is freed when the last of them returns (close() does
        not wait for them).  Any later use raises ValueError."""
        h = getattr(self, '_h', None)
        self._h = None
        if h is not None:
            h.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def _out_handle():
    return ctypes.c_void_p()


def _path(p):
    """A path argument -> bytes for the library.  An embedded NUL would
    silently cut the C string, so it raises ValueError as open() does."""
    b = os.fsencode(os.fspath(p))
    if b'\0' in b:
        raise ValueError('embedded null byte in path %r' % (p,))
    return b


def _save_flags(fsync):
    return 0 if fsync else _SAVE_NO_FSYNC

# ---------------------------------------------------------------------------
# Datasets
# ---------------------------------------------------------------------------


class Dataset(_Object):
    """Sequences of item ids (1..n_items), one per user.  Immutable."""

    _free_name = 'dataset_free'

    @classmethod
    def from_csr(cls, items, offsets, n_items=0, borrow=False):
        """From CSR arrays (items int32, offsets int64 with n_users + 1
        entries).  With borrow=True the library keeps pointers to the
        arrays instead of copying them (zero-copy for C-contiguous int32 /
        int64 numpy arrays or array.array('i'/'q')); the arrays are kept
        alive by this object and MUST NOT be modified afterwards.

        Checked before the library sees them (ValueError): offsets is 1-D
        with n_users + 1 entries, offsets[0] == 0, offsets never decrease
        and offsets[-1] == len(items).  borrow=True with arrays that would
        need a conversion (another dtype or byte order, non-contiguous,
        lists) raises ValueError instead of lending a private copy."""
        ia, oa, nu, keep, copied = _csr_arrays(items, offsets)
        if borrow and copied:
            raise ValueError(
                'borrow=True needs items as int32 and offsets as int64, '
                'each a C-contiguous, aligned, native-endian numpy array '
                "or an array.array('%s') / array.array('%s'); got items %s"
                ' and offsets %s.  Pass borrow=False to let the binding '
                'copy (and convert) them' % (_I32, _I64, _describe(items),
                                             _describe(offsets)))
        out = _out_handle()
        _call('dataset_create', ctypes.byref(out), ia, oa, nu,
              _int_in(n_items, _i32, 'n_items'),
              _FLAG_BORROW if borrow else 0)
        return cls._wrap(out.value, keep if borrow else ())

    @classmethod
    def from_sequences(cls, seqs, n_items=0):
        """From a list of sequences (lists, arrays).  The CSR arrays are
        built once here and lent to the library (no second copy)."""
        items, offsets = _build_csr(seqs)
        return cls.from_csr(items, offsets, n_items, borrow=True)

    @classmethod
    def from_text(cls, text, n_items=0, name=None):
        """Parse 'user item item ...' lines (str or bytes)."""
        if isinstance(text, str):
            text = text.encode('utf-8')
        addr, n, keep = _bytes_input(text)
        out = _out_handle()
        _call('dataset_parse_text', ctypes.byref(out), addr, n,
              _int_in(n_items, _i32, 'n_items'),
              name.encode('utf-8') if name is not None else None)
        del keep
        return cls._wrap(out.value)

    @classmethod
    def load(cls, path, n_items=0):
        """Read a sequence file (format of from_text)."""
        out = _out_handle()
        _call('dataset_load_text', ctypes.byref(out), _path(path),
              _int_in(n_items, _i32, 'n_items'))
        return cls._wrap(out.value)

    @property
    def n_users(self):
        with self._use() as p:
            return _f.dataset_n_users(p)

    @property
    def n_items(self):
        with self._use() as p:
            return _f.dataset_n_items(p)

    @property
    def n_interactions(self):
        with self._use() as p:
            return _f.dataset_n_interactions(p)

    def __len__(self):
        return self.n_users

    def _user_items_ptr(self, u):
        """(address, length) of row u inside the dataset: only valid while
        the dataset is pinned (user_items() reads it under _use())."""
        with self._use() as dp:
            n = _i32()
            p = _f.dataset_user_items(dp, u, ctypes.byref(n))
            return p, n.value

    def _index(self, u):
        nu = self.n_users
        u = operator.index(u)
        if u < 0:
            u += nu
        if not 0 <= u < nu:
            raise IndexError('user %d out of range 0..%d' % (u, nu - 1))
        return u

    def user_items(self, u):
        """A copy of user u's items (numpy int32 or array.array)."""
        u = self._index(u)
        with self._use():  # the copy reads the dataset's memory
            p, n = self._user_items_ptr(u)
            if np is not None:
                out = np.empty(n, np.int32)
                if n:
                    ctypes.memmove(out.ctypes.data, p, 4 * n)
                return out
            out = array.array(_I32, bytes(4 * n))
            if n:
                ctypes.memmove(out.buffer_info()[0], p, 4 * n)
            return out

    def user_id(self, u):
        """Row u's user id (the first token of its line for text)."""
        u = self._index(u)
        with self._use() as p:
            return _f.dataset_user_id(p, u)

    def __iter__(self):
        for u in range(self.n_users):
            yield self.user_items(u)

    def to_lists(self):
        return [list(s) for s in self]

    def to_csr(self):
        """A CSR copy of the whole dataset."""
        return CSR(*_build_csr(list(self)))

    def __repr__(self):
        try:
            return '<iadsr.Dataset users=%d items=%d interactions=%d>' % (
                self.n_users, self.n_items, self.n_interactions)
        except ValueError:
            return '<iadsr.Dataset closed>'

# ---------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------


class Model(_Object):
    """A backbone encoder with its weights.  Immutable and shareable."""

    _free_name = 'model_free'

    @classmethod
    def create(cls, n_items, backbone='sasrec', **params):
        """Fresh weights.  params are iadsr_model_params fields (dim,
        max_seq_len, n_layers, n_heads, ffn_dim, activation ('gelu',
        'relu'), dropout, flags, seed, caser_window, caser_h_filters,
        caser_v_filters) plus pre_ln=True for IADSR_MODEL_F_PRE_LN."""
        p = _model_params(n_items, backbone=backbone, **params)
        out = _out_handle()
        _call('model_create', ctypes.byref(out), ctypes.byref(p))
        return cls._wrap(out.value)

    @classmethod
    def from_embeddings(cls, emb, backbone='sasrec', **params):
        """Fresh weights with the item table copied from emb, an
        (n_items + 1) x dim float32 matrix (row 0, padding, is ignored);
        n_items and dim default to emb's shape."""
        addr, rows, cols, ld, keep = _f32_matrix(emb, 'emb')
        params.setdefault('dim', cols)
        p = _model_params(params.pop('n_items', rows - 1), backbone=backbone,
                          **params)
        out = _out_handle()
        _call('model_create_from_embeddings', ctypes.byref(out),
              ctypes.byref(p), addr, rows, _int_in(cols, _i32, 'dim'), ld)
        del keep
        return cls._wrap(out.value)

    @classmethod
    def load(cls, path):
        """Load a checkpoint file (aligner and gate, if any, are ignored;
        see load_checkpoint())."""
        out = _out_handle()
        _call('model_load', ctypes.byref(out), _path(path), 0)
        return cls._wrap(out.value)

    @classmethod
    def from_bytes(cls, data):
        addr, n, keep = _bytes_input(data)
        out = _out_handle()
        _call('model_load_from_buffer', ctypes.byref(out), addr, n, 0)
        del keep
        return cls._wrap(out.value)

    def save(self, path, fsync=True):
        """Atomic save (temporary file + rename)."""
        path = _path(path)
        with self._use() as mp:
            _call('model_save', mp, path, _save_flags(fsync))

    def to_bytes(self):
        """The checkpoint bytes (deterministic for a given model)."""
        need = _SZ()
        with self._use() as mp:
            _call('model_save_to_buffer', mp, None, 0, ctypes.byref(need))
            buf = ctypes.create_string_buffer(need.value)
            _call('model_save_to_buffer', mp, ctypes.addressof(buf),
                  need.value, ctypes.byref(need))
        return buf.raw[:need.value]

    def params(self):
        """The hyper-parameters as a dict (accepted by Model.create)."""
        p, _ = _init_raw(ModelParams)
        with self._use() as mp:
            _call('model_get_params', mp, ctypes.byref(p))
        d = _struct_dict(p)
        d['backbone'] = _name_of(d['backbone'], BACKBONES)
        d['activation'] = _name_of(d['activation'], ACTIVATIONS)
        return d

    @property
    def backbone(self):
        with self._use() as mp:
            return _name_of(_f.model_backbone(mp), BACKBONES)

    @property
    def n_items(self):
        with self._use() as mp:
            return _f.model_n_items(mp)

    @property
    def dim(self):
        with self._use() as mp:
            return _f.model_dim(mp)

    @property
    def max_seq_len(self):
        with self._use() as mp:
            return _f.model_max_seq_len(mp)

    @property
    def n_params(self):
        with self._use() as mp:
            return _f.model_n_params(mp)

    @property
    def memory_usage(self):
        with self._use() as mp:
            return _f.model_memory_usage(mp)

    def item_embeddings(self, copy=False):
        """The (n_items + 1) x dim item table.

        The header guarantees the pointer for the model's lifetime, so by
        default this is a read-only zero-copy view (numpy array, or a 2-D
        memoryview without numpy) that keeps the model's memory alive even
        after close().  copy=True returns a private writable copy.
        """
        pin = _Pin(_handle_of(self), 'Model')  # ValueError when closed
        ptr = _f.model_item_embeddings(pin._h.ptr)
        rows, dim = self.n_items + 1, self.dim
        raw = (ctypes.c_float * (rows * dim)).from_address(ptr)
        raw._iadsr_pin = pin  # travels with every view of raw
        if np is not None:
            view = np.frombuffer(raw, dtype=np.float32).reshape(rows, dim)
            if copy:
                return view.copy()
            view.flags.writeable = False
            return view
        mv = memoryview(raw).cast('B').cast('f', [rows, dim])
        if copy:
            flat = array.array('f', mv.tobytes())
            return flat, (rows, dim)
        return mv.toreadonly()

    def with_item_ids(self, ids):
        """A new Model (weights copied) whose item i (1..n_items) has the
        external id ids[i - 1]; self is unchanged.  ids is a sequence of
        str (encoded as UTF-8; undecodable bytes read back by item_id()
        travel as surrogate escapes) or bytes, one per item: non-empty, at
        most 1024 bytes, without NUL, TAB, CR or LF, all distinct (else
        ValueError, or IadsrError naming the index).  ids=None gives a
        copy without ids.  Checkpoints keep the ids, and so do the
        snapshots of a Trainer created from the model."""
        if ids is None:
            arr, n = None, 0
        else:
            enc = []
            for i, x in enumerate(ids):
                if isinstance(x, str):
                    x = x.encode('utf-8', 'surrogateescape')
                elif not isinstance(x, (bytes, bytearray)):
                    raise TypeError('ids[%d] is %s, not str or bytes'
                                    % (i, type(x).__name__))
                x = bytes(x)
                if b'\0' in x:
                    raise ValueError('ids[%d] holds a NUL byte' % i)
                enc.append(x)
            n = _int_in(len(enc), _i32, 'len(ids)')
            arr = (ctypes.c_char_p * max(n, 1))(*enc)
        out = _out_handle()
        with self._use() as mp:
            _call('model_with_item_ids', ctypes.byref(out), mp, arr, n)
        return Model._wrap(out.value)

    def item_id(self, item):
        """The external id (str) of item 1..n_items, or None when the
        model has no ids or item is out of range."""
        item = int(item)
        if not -2**31 <= item < 2**31:
            return None
        with self._use() as mp:
            b = _f.model_item_id(mp, item)
        return None if b is None else b.decode('utf-8', 'surrogateescape')

    def item_index(self, ext_id):
        """The item (1..n_items) whose external id is ext_id (str or
        bytes), 0 when unknown or when the model has no ids."""
        if isinstance(ext_id, str):
            ext_id = ext_id.encode('utf-8', 'surrogateescape')
        ext_id = bytes(ext_id)
        if b'\0' in ext_id:
            return 0
        with self._use() as mp:
            return _f.model_item_index(mp, ext_id)

    @property
    def item_ids(self):
        """All external ids as a list (item i at index i - 1), or None."""
        if self.item_id(1) is None:
            return None
        return [self.item_id(i) for i in range(1, self.n_items + 1)]

    @property
    def history_repeats(self):
        """Whether a training sequence repeated an item within its training
        part: True, False, or None (unknown: never trained, or loaded from
        a checkpoint without the record).  `iadsr recommend` excludes each
        user's history by default only when this is False."""
        with self._use() as mp:
            r = _f.model_history_repeats(mp)
        return None if r < 0 else bool(r)

    def context(self, **kw):
        return Context(self, **kw)

    def evaluate(self, dataset, **kw):
        return evaluate(self, dataset, **kw)

    def evaluate_ranks(self, dataset, target='test', n_threads=1,
                       exclude_history=False):
        return evaluate_ranks(self, dataset, target, n_threads,
                              exclude_history)

    def __repr__(self):
        try:
            return '<iadsr.Model %s items=%d dim=%d>' % (
                self.backbone, self.n_items, self.dim)
        except ValueError:
            return '<iadsr.Model closed>'

# ---------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------


ProgressInfo = collections.namedtuple(
    'ProgressInfo', 'epoch max_epochs best_epoch loss valid_hr10 '
    'valid_ndcg10 best_ndcg10 epoch_seconds elapsed_seconds struct_size '
    'loss_next loss_aux loss_detect learning_rate aux_scale')


def _progress_terms(i):
    """The loss terms, learning rate and loss-weight factor, NaN where the
    library's struct predates them (struct_size below 96 and 104)."""
    terms = (i.loss_next, i.loss_aux, i.loss_detect, i.learning_rate) \
        if i.struct_size >= 96 else (math.nan,) * 4
    return terms + ((i.aux_scale if i.struct_size >= 104 else math.nan),)


def _progress_callback(callback, errors, stop=None):
    """Wrap a Python callback so nothing raised in it crosses the C frame:
    the exception is stored, training is stopped, and fit re-raises.
    stop: None or a function; training also stops when it returns true
    (checked after the callback, e.g. the trainer was closed)."""
    def cb(pinfo, _user):
        try:
            if callback is not None:
                i = pinfo.contents
                info = ProgressInfo(i.epoch, i.max_epochs, i.best_epoch,
                                    i.loss, i.valid_hr10, i.valid_ndcg10,
                                    i.best_ndcg10, i.epoch_seconds,
                                    i.elapsed_seconds, i.struct_size,
                                    *_progress_terms(i))
                if callback(info):
                    return 1
            return 1 if stop is not None and stop() else 0
        except BaseException as e:  # includes KeyboardInterrupt
            errors.append(e)
            return 1
    return _PROGRESS_FN(cb)


class _DeferSigint:
    """Ctrl-C during a training call (Trainer.fit, pipeline).

    The library calls back only between epochs, and a Python signal handler
    runs only when Python code runs: with the default handler, Ctrl-C would
    either wait for the end of the whole fit (no callback) or raise
    KeyboardInterrupt inside the ctypes callback, where ctypes prints it and
    drops it.  So while the call runs on the main thread with Python's
    default SIGINT handler (signal.default_int_handler), SIGINT only sets a
    flag; the progress callback (installed by the binding when the caller
    gave none) returns non-zero when the flag is set, the library stops
    after the current epoch and keeps the best weights, the previous handler
    is put back, and the caller gets KeyboardInterrupt.  Elsewhere (another
    thread, SIG_IGN, a handler of the application's own) nothing changes.
    Nested calls (a fit inside a fit callback) share one installation."""

    _depth = 0         # active instances on the main thread
    _prev = None       # the handler to restore when _depth drops to 0
    _hit = False       # SIGINT seen since the outermost instance started

    def __init__(self):
        self.active = False
        self.hit = False   # after __exit__: SIGINT arrived

    @staticmethod
    def _handler(signum, frame):
        _DeferSigint._hit = True

    def __enter__(self):
        cls = _DeferSigint
        if threading.current_thread() is not threading.main_thread():
            return self
        if cls._depth == 0:
            try:
                prev = signal.getsignal(signal.SIGINT)
                if prev is not signal.default_int_handler:
                    return self
                signal.signal(signal.SIGINT, cls._handler)
            except (ValueError, OSError, AttributeError):
                return self  # e.g. a subinterpreter: leave signals alone
            cls._prev, cls._hit = prev, False
        cls._depth += 1
        self.active = True
        return self

    def interrupted(self):
        return self.active and _DeferSigint._hit

    def __exit__(self, *exc):
        if not self.active:
            return False
        cls = _DeferSigint
        cls._depth -= 1
        self.active = False
        self.hit = cls._hit
        if cls._depth == 0:
            # signal.signal() runs the pending Python-level handlers (ours
            # among them) before it replaces the handler, so a late SIGINT
            # is not lost; if another signal's handler raises there, the
            # second call restores the handler and the exception goes on
            prev = cls._prev
            try:
                signal.signal(signal.SIGINT, prev)
            except BaseException:
                signal.signal(signal.SIGINT, prev)
                raise
            finally:
                self.hit = cls._hit
                cls._prev, cls._hit = None, False
        return False


def _run_with_callback(name, callback, args_before, args_after=(),
                       stop=None):
    """Call a C function that takes (cb, user_data); returns True when it
    ran to the end, False when the callback (or stop()) asked to stop.
    Raises KeyboardInterrupt after the call when SIGINT arrived during it
    (see _DeferSigint: the call then stops after the current epoch)."""
    errors = []
    sigint = _DeferSigint()
    with sigint:
        wrapped = callback is not None or stop is not None or sigint.active
        if sigint.active:
            user_stop = stop

            def stop():
                return sigint.interrupted() or bool(
                    user_stop is not None and user_stop())
        cb = _progress_callback(callback, errors, stop) if wrapped \
            else _PROGRESS_FN()
        _f.clear_error()
        st = getattr(_f, name)(*args_before, cb, None, *args_after)
        detail = _text(_f.last_error()) if st != OK else ''
    if errors:
        raise errors[0]
    if sigint.hit and st in (OK, ERR_ABORTED):
        raise KeyboardInterrupt
    if st == ERR_ABORTED and wrapped:
        return False
    if st != OK:
        raise IadsrError('iadsr_' + name, st, detail)
    return True


def _as_semantic(x, n_items, row0_padding):
    """Semantic, path of a .npy, or a 2-D array -> Semantic.

    row0_padding=None: auto-detect, padding iff the matrix has exactly
    n_items + 1 rows (the embedding[item_id] layout)."""
    if x is None or isinstance(x, Semantic):
        return x
    if isinstance(x, (str, bytes, os.PathLike)):
        with open(x, 'rb') as fh:
            data = fh.read()
        if row0_padding is None:
            rows, _ = _npy_shape(data)
            row0_padding = rows == n_items + 1
        return Semantic.from_npy_bytes(data, row0_padding=row0_padding)
    if row0_padding is None:
        rows = x.shape[0] if hasattr(x, 'shape') else len(x)
        row0_padding = rows == n_items + 1
    return Semantic.from_array(x, row0_padding=row0_padding)


class Trainer(_Object):
    """Trains a private copy of a model on a dataset.

    Trainer(dataset, model, **train) where train are iadsr_train_params
    fields: split ('loo', 'none'), max_epochs, batch_size, patience,
    eval_every, n_threads, learning_rate, adam_beta1, adam_beta2, adam_eps,
    weight_decay, seed, label_smoothing, history_penalty.

    Data-parallel training over processes (since libiadsr 0.4,
    docs/DISTRIBUTED.md): allreduce=fn, rank=r, n_ranks=R, where fn(buf)
    sums buf over the ranks in place and leaves the same values on every
    rank (buf: a float32 or float64 numpy array, or a memoryview without
    numpy).  With mpi4py:

        def allreduce(buf):
            comm.Reduce(MPI.IN_PLACE if rank == 0 else buf, buf, root=0)
            comm.Bcast(buf, root=0)

    Every rank builds its Trainer from the same model, data, settings and
    seed, calls the same methods, and rank 0 saves.  An exception raised by
    fn fails the call (it is re-raised there).

    One thread at a time: a call (fit, run_epoch, snapshot,
    snapshot_denoiser) while another thread is inside one raises
    ConcurrentUseError.  close() is safe at any time, also from the fit
    progress callback: the handle is freed when the running call returns
    (see fit()).
    """

    _free_name = 'trainer_free'
    _one_thread = True
    _busy_hint = ('one thread at a time; a Trainer cannot be shared '
                  'between threads')

    def __init__(self, dataset, model, **train):
        train, coll = _collective_args(train)
        p = _train_params(train)
        _set_collective(p, coll)
        out = _out_handle()
        with _using(model, dataset) as (mp, dp):
            _call('trainer_create', ctypes.byref(out), mp, dp,
                  ctypes.byref(p))
        # dataset: may borrow host arrays (kept via the Dataset object)
        _Object.__init__(self, out.value, (dataset,))
        self.joint_training = False
        self._collective = coll  # the callback must outlive the trainer

    @classmethod
    def joint(cls, dataset, model, semantic, user_semantic=None,
              denoise=None, semantic_row0_padding=None, **train):
        """IADSR joint training (backbone + aligner + gate).

        semantic: a Semantic, a .npy path or a 2-D float array (row layout
        auto-detected unless semantic_row0_padding is given);
        user_semantic: None or one row per user (Semantic or array);
        denoise: dict of iadsr_denoise_params fields (lambda_align,
        lambda_recon, tau_align, tau_gumbel, theta, max_drop, protect_last,
        seed) plus collab_only / carry_masks / paper_losses / detect /
        holdout / clean_scores / input_mask / backoff / text_feature
        booleans (detect: the
        trained detector gate; with it, holdout: about 1 user in 16 stays
        out of training for the label-free noise rate; clean_scores: the
        detector learns on dropout-free scores; input_mask: the gate's
        decisions mask the training inputs; backoff: the auxiliary losses'
        weight on the backbone goes down by 10x, twice at most, when
        validation stalls; text_feature: the detector also reads each
        item's text consistency with its sequence; docs/METHOD.md).
        """
        sem = _as_semantic(semantic, model.n_items, semantic_row0_padding)
        usem = user_semantic
        if usem is not None and not isinstance(usem, Semantic):
            usem = Semantic.from_array(usem)
        train, coll = _collective_args(train)
        tp = _train_params(train)
        _set_collective(tp, coll)
        dp = _denoise_params(denoise)
        out = _out_handle()
        with _using(model, dataset, sem, usem) as (mp, dsp, sp, up):
            _call('trainer_create_joint', ctypes.byref(out), mp, dsp, sp, up,
                  ctypes.byref(tp), ctypes.byref(dp))
        self = cls.__new__(cls)
        _Object.__init__(self, out.value, (dataset, sem, usem))
        self.joint_training = True
        self._collective = coll
        return self

    def _collective_error(self):
        """Re-raise (once) what the allreduce callback raised."""
        coll = getattr(self, '_collective', None)
        if coll is not None and coll['errors']:
            e = coll['errors'][0]
            del coll['errors'][:]
            raise e

    def run_epoch(self):
        """One epoch; returns the mean loss."""
        loss = _f64()
        with self._exclusive() as tp:
            try:
                _call('trainer_run_epoch', tp, ctypes.byref(loss))
            except IadsrError:
                self._collective_error()
                raise
        return loss.value

    def fit(self, callback=None):
        """Train to max_epochs or early stopping.  callback(info) runs after
        every epoch with a ProgressInfo; a truthy return stops training
        (fit then returns False).  An exception raised by the callback stops
        training and is re-raised here.  Returns True otherwise.

        close() during fit (from the callback, or from another thread) is
        deferred: training stops after the current epoch, fit returns False
        (or re-raises the callback's exception) and the handle is freed as
        fit returns.

        Ctrl-C (SIGINT) while fit runs on the main thread, with or without
        a callback: training stops after the current epoch (the library
        checks between epochs), the previous SIGINT handler is restored and
        fit raises KeyboardInterrupt; snapshot() still gives the best model
        so far.  This needs Python's default SIGINT handler; with SIG_IGN or
        a handler of your own, or on another thread, signals are left
        alone."""
        with self._exclusive() as tp:
            try:
                done = _run_with_callback('trainer_fit', callback, (tp,),
                                          stop=lambda: self.closed)
            except IadsrError:
                self._collective_error()
                raise
            # a failed collective also reads as a stop: say which it was
            self._collective_error()
            return done

    def snapshot(self):
        """The best validated model (or current weights without
        validation), independent of the trainer."""
        out = _out_handle()
        with self._exclusive() as tp:
            _call('trainer_snapshot', tp, ctypes.byref(out))
        return Model._wrap(out.value)

    def snapshot_denoiser(self):
        """(Aligner, Gate) from the same epoch as snapshot(); joint only."""
        a, g = _out_handle(), _out_handle()
        with self._exclusive() as tp:
            _call('trainer_snapshot_denoiser', tp, ctypes.byref(a),
                  ctypes.byref(g))
        return Aligner._wrap(a.value), Gate._wrap(g.value)

    @property
    def checksum(self):
        """64-bit checksum of the weights, Adam moments and step count
        (iadsr_trainer_checksum, libiadsr 0.4): equal on ranks in step."""
        if not hasattr(_f, 'trainer_checksum'):
            raise IadsrError('iadsr_trainer_checksum', ERR_UNSUPPORTED,
                             'needs libiadsr 0.4 (loaded: %s)' %
                             version())
        out = ctypes.c_uint64()
        with self._exclusive() as tp:
            _call('trainer_checksum', tp, ctypes.byref(out))
        return out.value

    @property
    def epochs_done(self):
        """Epochs run so far (a plain read; allowed while fit runs on
        another thread)."""
        with self._use() as tp:
            return _f.trainer_epochs_done(tp)

# ---------------------------------------------------------------------------
# Inference
# ---------------------------------------------------------------------------


class Context(_Object):
    """Scoring scratch bound to a model (which it keeps alive).  Use one
    per thread: the library's context is single-threaded, so a call made
    while another thread is inside a call on the same Context raises
    ConcurrentUseError (it never waits, and never shares the scratch).

    Sequences in CSR form (a CSR of items and offsets) and out= buffers are
    checked before the library sees them (ValueError): offsets[0] == 0,
    offsets never decrease, offsets[-1] == len(items); buffers of exactly
    the result's shape, dtype float32 (ids: int32), C-contiguous, aligned
    and writable (without numpy: array.array of the right type code and
    length)."""

    _free_name = 'ctx_free'
    _one_thread = True
    _busy_hint = 'one thread at a time; create a Context per thread'

    def __init__(self, model, max_batch=None, fp16_scan=False,
                 int8_scan=False):
        """fp16_scan=True: topk() scans a half-size fp16 copy of the item
        table and re-scores the candidates a proven bound keeps in fp32, so
        its answer equals the fp32 answer (IADSR_CTX_F_FP16_SCAN);
        int8_scan=True: the same with a quarter-size int8 copy
        (IADSR_CTX_F_INT8_SCAN). At most one. Raises IadsrError
        (IADSR_ERR_UNSUPPORTED) where the packed kernels do not run, or
        (fp16) a table value is beyond fp16's range."""
        p, _ = _init_raw(CtxParams)
        if max_batch is not None:
            _set_fields(p, {'max_batch': max_batch})
        p.flags = ((_CTX_F_FP16_SCAN if fp16_scan else 0) |
                   (_CTX_F_INT8_SCAN if int8_scan else 0))
        out = _out_handle()
        with model._use() as mp:
            _call('ctx_create', ctypes.byref(out), mp, ctypes.byref(p))
            n_items = _f.model_n_items(mp)
            dim = _f.model_dim(mp)
        _Object.__init__(self, out.value)
        self.n_items = n_items
        self._dim = dim

    def score(self, seq, out=None):
        """Scores of every item after seq: n_items + 1 floats indexed by
        item id (entry 0 is -inf)."""
        addr, n, keep, _ = _i32_input(seq)
        n1 = self.n_items + 1
        out, oa = _out_buffer(out, 'f', (n1,), 'out')
        with self._exclusive() as cp:
            _call('ctx_score', cp, addr, _int_in(n, _i32, 'len(seq)'), oa,
                  n1)
        return out

    def score_batch(self, seqs, out=None):
        """Scores for a list of sequences (or a CSR): shape
        (n_users, n_items + 1); flat row-major without numpy."""
        ia, oa_, nu, keep = _csr_input(seqs)
        n1 = self.n_items + 1
        out, oa = _out_buffer(out, 'f', (max(nu, 0), n1), 'out')
        with self._exclusive() as cp:
            _call('ctx_score_batch', cp, ia, oa_, nu, oa, max(nu, 0) * n1)
        return out

    def user_vector(self, seq, out=None):
        """The user representation h after seq: d floats such that
        score(seq)[i] == dot(h, model.item_embeddings()[i]) for every item
        i >= 1 (no bias term; equal up to float rounding)."""
        addr, n, keep, _ = _i32_input(seq)
        out, oa = _out_buffer(out, 'f', (self._dim,), 'out')
        with self._exclusive() as cp:
            _call('ctx_user_vector', cp, addr, _int_in(n, _i32, 'len(seq)'),
                  oa)
        return out

    def user_vector_batch(self, seqs, out=None):
        """User vectors for a list of sequences (or a CSR): shape
        (n_users, d); flat row-major without numpy.  Row u dotted with the
        item table gives score_batch() row u."""
        ia, oa_, nu, keep = _csr_input(seqs)
        out, oa = _out_buffer(out, 'f', (max(nu, 0), self._dim), 'out')
        with self._exclusive() as cp:
            _call('ctx_user_vector_batch', cp, ia, oa_, nu, oa)
        return out

    def topk(self, seq, k, exclude_history=False, ids_out=None,
             scores_out=None):
        """(ids, scores) of the k best next items, best first; ids are
        padded with -1 and scores with -inf when fewer candidates exist."""
        addr, n, keep, _ = _i32_input(seq)
        k = _int_in(k, _i32, 'k')
        kk = max(k, 1)  # the library reports a bad k itself
        ids, ia = _out_buffer(ids_out, _I32, (kk,), 'ids_out')
        sc, sa = _out_buffer(scores_out, 'f', (kk,), 'scores_out')
        with self._exclusive() as cp:
            _call('ctx_topk', cp, addr, _int_in(n, _i32, 'len(seq)'), k,
                  _TOPK_EXCLUDE_HISTORY if exclude_history else 0, ia, sa)
        return ids, sc

    def topk_batch(self, seqs, k, exclude_history=False, ids_out=None,
                   scores_out=None):
        """Top-k for a list of sequences (or a CSR): (ids, scores) of shape
        (n_users, k); flat row-major array.array without numpy."""
        ia_, oa_, nu, keep = _csr_input(seqs)
        k = _int_in(k, _i32, 'k')
        shape = (max(nu, 0), max(k, 1))
        ids, ia = _out_buffer(ids_out, _I32, shape, 'ids_out')
        sc, sa = _out_buffer(scores_out, 'f', shape, 'scores_out')
        with self._exclusive() as cp:
            _call('ctx_topk_batch', cp, ia_, oa_, nu, k,
                  _TOPK_EXCLUDE_HISTORY if exclude_history else 0, ia, sa)
        return ids, sc


def evaluate(model, dataset, target='test', n_threads=1,
             exclude_history=False):
    """Leave-one-out full-ranking metrics, a dict with the keys of `iadsr
    eval --json`: 'users', 'HR@5', 'HR@10', 'HR@20', 'NDCG@5', 'NDCG@10',
    'NDCG@20', 'MRR'; and the names of earlier versions as aliases
    (METRIC_ALIASES: n_users, hr5, hr10, hr20, ndcg5, ndcg10, ndcg20).
    target: 'test' or 'valid'.  One ranking pass (evaluate_ranks) gives
    them all; HR/NDCG are bit-identical to iadsr_evaluate.  Other cut-offs:
    metrics_from_ranks(evaluate_ranks(...)[1], ks=...)."""
    _, ranks = evaluate_ranks(model, dataset, target, n_threads,
                              exclude_history)
    return _with_aliases(metrics_from_ranks(ranks))


def evaluate_ranks(model, dataset, target='test', n_threads=1,
                   exclude_history=False):
    """The per-user ranks behind evaluate(): (users, ranks), the dataset
    row of every evaluated user and the 0-based rank of its target (0 =
    top), in row order.  int64 / int32 numpy arrays, or lists without
    numpy.  HR@K = mean(ranks < K), NDCG@K = mean over ranks < K of
    1 / log2(rank + 2) (0 otherwise), MRR = mean(1 / (ranks + 1))."""
    p = _eval_params(target, n_threads, exclude_history)
    n = _i64()
    with _using(model, dataset) as (mp, dp):
        _call('evaluate_ranks', mp, dp, ctypes.byref(p), None, None, 0,
              ctypes.byref(n))
        users, ua = _out_buffer(None, _I64, (n.value,), 'users')
        ranks, ra = _out_buffer(None, _I32, (n.value,), 'ranks')
        _call('evaluate_ranks', mp, dp, ctypes.byref(p), ua, ra, n.value,
              ctypes.byref(n))
    if np is None:
        return list(users), list(ranks)
    return users, ranks

# ---------------------------------------------------------------------------
# Semantic matrices and .npy
# ---------------------------------------------------------------------------


def _npy_shape(data):
    addr, n, keep = _bytes_input(data)
    rows, cols = _i64(), _i64()
    _call('npy_decode', addr, n, None, 0, ctypes.byref(rows),
          ctypes.byref(cols))
    return rows.value, cols.value


def npy_decode(data):
    """Decode .npy bytes holding a 2-D float array ('<f4' or '<f2').
    Returns a float32 numpy array, or (array('f'), (rows, cols))."""
    addr, n, keep = _bytes_input(data)
    rows, cols = _npy_shape(data)
    out, oa = _out_buffer(None, 'f', (rows, cols), 'out')
    r, c = _i64(), _i64()
    _call('npy_decode', addr, n, oa, rows * cols, ctypes.byref(r),
          ctypes.byref(c))
    return out if np is not None else (out, (rows, cols))


def npy_save(path, data, fsync=True):
    """Write a 2-D float32 matrix as a .npy file, atomically."""
    path = _path(path)
    addr, rows, cols, ld, keep = _f32_matrix(data, 'data')
    _call('npy_save', path, addr, rows, cols, ld, _save_flags(fsync))


class Semantic(_Object):
    """n_items x D semantic item embeddings.  Immutable, shareable."""

    _free_name = 'semantic_free'

    @classmethod
    def from_array(cls, data, row0_padding=False, borrow=False):
        """From a 2-D float matrix.  row0_padding: row r is item r and row 0
        is ignored (n_items + 1 rows); else row r is item r + 1.
        borrow=True: zero-copy for float32 numpy arrays (native byte order,
        aligned) with contiguous rows, i.e. C-contiguous or a column slice
        of such an array (without numpy: (array.array('f'), (rows,
        cols))); the array is kept alive and MUST NOT be modified.  Any
        other input with borrow=True (float64, Fortran order, strided rows,
        lists) raises ValueError instead of silently lending a copy;
        borrow=False copies and converts it."""
        addr, rows, cols, ld, keep = _f32_matrix(data, 'data', borrow)
        flags = (_FLAG_BORROW if borrow else 0) | \
            (_SEMANTIC_ROW0_PADDING if row0_padding else 0)
        out = _out_handle()
        _call('semantic_create', ctypes.byref(out), addr, rows,
              _int_in(cols, _i32, 'dim'), ld, flags)
        return cls._wrap(out.value, (keep,) if borrow else ())

    @classmethod
    def from_npy_bytes(cls, data, row0_padding=False):
        addr, n, keep = _bytes_input(data)
        out = _out_handle()
        _call('semantic_parse_npy', ctypes.byref(out), addr, n,
              _SEMANTIC_ROW0_PADDING if row0_padding else 0)
        return cls._wrap(out.value)

    @classmethod
    def load_npy(cls, path, row0_padding=False):
        out = _out_handle()
        _call('semantic_load_npy', ctypes.byref(out), _path(path),
              _SEMANTIC_ROW0_PADDING if row0_padding else 0)
        return cls._wrap(out.value)

    def save_npy(self, path, row0_padding=False, fsync=True):
        flags = (_SEMANTIC_ROW0_PADDING if row0_padding else 0) | \
            _save_flags(fsync)
        path = _path(path)
        with self._use() as sp:
            _call('semantic_save_npy', sp, path, flags)

    @property
    def n_items(self):
        with self._use() as sp:
            return _f.semantic_n_items(sp)

    @property
    def dim(self):
        with self._use() as sp:
            return _f.semantic_dim(sp)

    @property
    def n_zero_rows(self):
        with self._use() as sp:
            return _f.semantic_n_zero_rows(sp)

    def _row_ptr(self, item):
        """Address of item's row: only valid while the matrix is pinned
        (row() reads it under _use())."""
        item = _int_in(item, _i32, 'item')
        with self._use() as sp:
            return _f.semantic_row(sp, item)

    def row(self, item):
        """A copy of item's row (D floats)."""
        with self._use():  # the copy reads the matrix's memory
            p = self._row_ptr(item)
            if not p:
                raise IndexError('item %d outside 1..%d' %
                                 (item, self.n_items))
            d = self.dim
            out, oa = _out_buffer(None, 'f', (d,), 'out')
            ctypes.memmove(oa, p, 4 * d)
        return out

    def check(self, n_items, dim=0):
        """Raise IadsrError (DIM_MISMATCH) unless the matrix fits."""
        n_items = _int_in(n_items, _i32, 'n_items')
        dim = _int_in(dim, _i32, 'dim')
        with self._use() as sp:
            _call('semantic_check', sp, n_items, dim)

    def scores(self, seq, out=None):
        """Text-only next-item scores (cosine to the sequence mean)."""
        addr, n, keep, _ = _i32_input(seq)
        n1 = self.n_items + 1
        out, oa = _out_buffer(out, 'f', (n1,), 'out')
        with self._use() as sp:
            _call('semantic_scores', sp, addr, _int_in(n, _i32, 'n'), oa, n1)
        return out

    def evaluate(self, dataset, target='test', n_threads=1,
                 exclude_history=False):
        p = _eval_params(target, n_threads, exclude_history)
        m = _new_metrics()
        with _using(self, dataset) as (sp, dp):
            _call('semantic_evaluate', sp, dp, ctypes.byref(p),
                  ctypes.byref(m))
        return _metrics_dict(m)

# ---------------------------------------------------------------------------
# IADSR: aligner, gate, denoiser, checkpoints, pipeline
# ---------------------------------------------------------------------------


class Aligner(_Object):
    """Projections W1 (short-term) and W2 (long-term) from the semantic
    space to the backbone's.  Immutable."""

    _free_name = 'aligner_free'

    @classmethod
    def create(cls, dim, sem_dim, **denoise):
        """Fresh Xavier-initialised weights (seed, tau_align from
        denoise)."""
        p = _denoise_params(denoise)
        out = _out_handle()
        _call('aligner_create', ctypes.byref(out), _int_in(dim, _i32, 'dim'),
              _int_in(sem_dim, _i32, 'sem_dim'), ctypes.byref(p))
        return cls._wrap(out.value)

    @property
    def dim(self):
        with self._use() as ap:
            return _f.aligner_dim(ap)

    @property
    def semantic_dim(self):
        with self._use() as ap:
            return _f.aligner_semantic_dim(ap)

    def project(self, x, which='short', out=None):
        """W1 x (which='short' or 1) or W2 x ('long' or 2)."""
        w = {'short': 1, 'long': 2}.get(which, which)
        addr, keep = _f32_vector(x, self.semantic_dim, 'x')
        out, oa = _out_buffer(out, 'f', (self.dim,), 'out')
        with self._use() as ap:
            _call('aligner_project', ap, _int_in(w, _i32, 'which'), addr, oa)
        return out


class Gate(_Object):
    """Denoising gate: decoder weights and the inference rule."""

    _free_name = 'gate_free'

    @classmethod
    def create(cls, dim, **denoise):
        p = _denoise_params(denoise)
        out = _out_handle()
        _call('gate_create', ctypes.byref(out), _int_in(dim, _i32, 'dim'),
              ctypes.byref(p))
        return cls._wrap(out.value)

    def _params_struct(self):
        p, _ = _init_raw(DenoiseParams)
        with self._use() as gp:
            _call('gate_get_params', gp, ctypes.byref(p))
        return p

    def params(self):
        """The gate's settings as a dict."""
        return _struct_dict(self._params_struct())

    def with_params(self, **denoise):
        """A new gate with this decoder and the inference rule changed by
        the given fields (theta, max_drop, protect_last, ...); fields not
        given keep this gate's values."""
        p = _denoise_params(denoise, base=self._params_struct())
        out = _out_handle()
        with self._use() as gp:
            _call('gate_with_params', ctypes.byref(out), gp, ctypes.byref(p))
        return Gate._wrap(out.value)

    @property
    def dim(self):
        with self._use() as gp:
            return _f.gate_dim(gp)


class Denoiser(_Object):
    """Model + aligner + gate + semantic rows: cleans sequences.  Holds
    references to all four; may be used by many threads at once."""

    _free_name = 'denoiser_free'

    def __init__(self, model, aligner, gate, semantic,
                 semantic_row0_padding=None, allow_mismatch=False):
        """Trained parts remember the backbone, item count and semantic
        matrix they were trained with; another combination raises
        IadsrError (IADSR_ERR_MISMATCH) unless allow_mismatch=True."""
        sem = _as_semantic(semantic, model.n_items, semantic_row0_padding)
        out = _out_handle()
        flags = _DENOISER_ALLOW_MISMATCH if allow_mismatch else 0
        with _using(model, aligner, gate, sem) as (mp, ap, gp, sp):
            _call('denoiser_create_v2', ctypes.byref(out), mp, ap, gp, sp,
                  flags)
        # sem may borrow host memory: keep its Python object alive
        _Object.__init__(self, out.value, (sem,))
        self.semantic_dim = sem.dim

    def clean(self, seq, user_vec=None):
        """(keep, scores, cleaned): keep mask (bool numpy / array('B')),
        per-position scores, and the kept items in order."""
        addr, n, keep_seq, _ = _i32_input(seq)
        uaddr, ukeep = (None, None) if user_vec is None else \
            _f32_vector(user_vec, self.semantic_dim, 'user_vec')
        nn = max(n, 1)
        keep, ka = _out_buffer(None, 'B', (nn,), 'keep')
        sc, sa = _out_buffer(None, 'f', (nn,), 'scores')
        cl, ca = _out_buffer(None, _I32, (nn,), 'cleaned')
        n_kept = _i32()
        with self._use() as dnp:
            _call('denoiser_clean', dnp, addr, _int_in(n, _i32, 'len(seq)'),
                  uaddr, ka, sa, ca, ctypes.byref(n_kept))
        return _as_bool(keep), sc, cl[:n_kept.value]

    def clean_dataset(self, dataset, split='loo', user_semantic=None,
                      n_threads=1, return_details=False):
        """A cleaned Dataset (same users and ids).  split='loo' cleans only
        each training part (last two items kept); 'none' whole sequences.
        return_details=True also returns (keep, scores) over the
        interactions in dataset order (scores NaN where not scored)."""
        usem = user_semantic
        if usem is not None and not isinstance(usem, Semantic):
            usem = Semantic.from_array(usem)
        ka = sa = None
        keep = scores = None
        if return_details:
            ni = dataset.n_interactions
            keep, ka = _out_buffer(None, 'B', (ni,), 'keep')
            scores, sa = _out_buffer(None, 'f', (ni,), 'scores')
        out = _out_handle()
        with _using(self, dataset, usem) as (dnp, dp, up):
            _call('denoiser_clean_dataset', dnp, dp,
                  _enum(split, SPLITS, 'split'), up,
                  _int_in(n_threads, _i32, 'n_threads'), ctypes.byref(out),
                  ka, sa)
        # conservatively keep the source (it may borrow host arrays)
        cleaned = Dataset._wrap(out.value, (dataset, usem))
        if return_details:
            return cleaned, _as_bool(keep), scores
        return cleaned


    def propose_theta(self, dataset, split='loo', user_semantic=None,
                      n_threads=1):
        """(theta, noise_rate): the label-free threshold of a detector
        gate for dataset (iadsr_denoiser_propose_theta)."""
        usem = user_semantic
        if usem is not None and not isinstance(usem, Semantic):
            usem = Semantic.from_array(usem)
        th, rate = ctypes.c_float(), ctypes.c_double()
        with _using(self, dataset, usem) as (dnp, dp, up):
            _call('denoiser_propose_theta', dnp, dp,
                  _enum(split, SPLITS, 'split'), up,
                  _int_in(n_threads, _i32, 'n_threads'), ctypes.byref(th),
                  ctypes.byref(rate))
        return th.value, rate.value


def save_checkpoint(path, model, aligner=None, gate=None, fsync=True):
    """One file with the backbone and optionally its aligner and gate."""
    path = _path(path)
    with _using(model, aligner, gate) as (mp, ap, gp):
        _call('checkpoint_save', mp, ap, gp, path, _save_flags(fsync))


def load_checkpoint(path):
    """(Model, Aligner or None, Gate or None) from a checkpoint file."""
    m, a, g = _out_handle(), _out_handle(), _out_handle()
    _call('checkpoint_load', ctypes.byref(m), ctypes.byref(a),
          ctypes.byref(g), _path(path), 0)
    return Model._wrap(m.value), Aligner._wrap(a.value), Gate._wrap(g.value)


def load_checkpoint_bytes(data):
    """As load_checkpoint(), from bytes (e.g. Model.to_bytes() or a file's
    content)."""
    addr, n, keep = _bytes_input(data)
    m, a, g = _out_handle(), _out_handle(), _out_handle()
    _call('checkpoint_load_from_buffer', ctypes.byref(m), ctypes.byref(a),
          ctypes.byref(g), addr, n, 0)
    return Model._wrap(m.value), Aligner._wrap(a.value), Gate._wrap(g.value)


def pipeline(dataset, semantic, model=None, train=None, denoise=None,
             callback=None, semantic_row0_padding=None):
    """The paper's pipeline (iadsr_pipeline): train IADSR, clean, retrain,
    evaluate.  model/train/denoise are dicts of params (model n_items
    defaults to the dataset's).  Returns (result dict, retrained Model,
    cleaned Dataset); result['test'] is a metrics dict.  A callback that
    stops training raises IadsrError (ABORTED): the pipeline has no
    partial result; Ctrl-C stops it after the current epoch and raises
    KeyboardInterrupt (as Trainer.fit)."""
    model = dict(model or {})
    n_items = model.pop('n_items', dataset.n_items)
    mp = _model_params(n_items, **model)
    sem = _as_semantic(semantic, n_items, semantic_row0_padding)
    tp = _train_params(train or {})
    dp = _denoise_params(denoise)
    res = PipelineResult()
    res.struct_size = ctypes.sizeof(PipelineResult)
    res.test.struct_size = ctypes.sizeof(Metrics)
    m, d = _out_handle(), _out_handle()
    with _using(dataset, sem) as (dsp, sp):
        done = _run_with_callback(
            'pipeline', callback,
            (dsp, sp, ctypes.byref(mp), ctypes.byref(tp), ctypes.byref(dp)),
            (ctypes.byref(res), ctypes.byref(m), ctypes.byref(d)))
    if not done:
        raise IadsrError('iadsr_pipeline', ERR_ABORTED,
                         'stopped by the progress callback')
    out = _struct_dict(res)
    out['test'] = _metrics_dict(res.test)
    return (out, Model._wrap(m.value),
            Dataset._wrap(d.value, (dataset, sem)))

# ---------------------------------------------------------------------------
# High-level interface: your own ids in, recommendations out
# ---------------------------------------------------------------------------

_PANDAS = []  # [module or None], filled on first use


def _pandas():
    """pandas when it is importable and numpy is in use (pandas needs
    numpy; IADSR_PY_NO_NUMPY=1 therefore also turns the DataFrame outputs
    off), else None.  Imported lazily: `import iadsr` stays fast."""
    if not _PANDAS:
        pd = None
        if np is not None:
            try:
                import pandas as pd
            except ImportError:
                pd = None
        _PANDAS.append(pd)
    return _PANDAS[0]


class UnknownIdError(KeyError):
    """An external user (or item) id that the data or model does not
    know.  A KeyError whose message is printed as is."""

    def __str__(self):
        return str(self.args[0]) if self.args else ''


def _plain(x):
    """numpy scalars -> the equal Python object (hashing, printing)."""
    if np is not None and isinstance(x, np.generic):
        return x.item()
    return x


def _tolist(x, what):
    if x is None:
        return None
    if hasattr(x, 'tolist'):  # numpy arrays, pandas Series
        x = x.tolist()
    if isinstance(x, (str, bytes)):
        raise TypeError('%s must be a sequence of ids, not a single %s'
                        % (what, type(x).__name__))
    return [_plain(v) for v in x]


def _id_bytes(x, kind):
    """An external id as the bytes a vocabulary file holds: str (UTF-8,
    surrogate escapes kept), bytes as they are, anything else str(x)."""
    if isinstance(x, (bytes, bytearray)):
        b = bytes(x)
    else:
        b = (x if isinstance(x, str) else str(x)).encode('utf-8',
                                                         'surrogateescape')
    if not b:
        raise ValueError('%s id %r is empty: a vocabulary cannot hold it'
                         % (kind, x))
    if any(c in b for c in (b'\t', b'\r', b'\n', b'\0')):
        raise ValueError('%s id %r holds a tab, CR, LF or NUL: a vocabulary '
                         'cannot hold it' % (kind, x))
    return b


def _write_atomic(path, data):
    """Write bytes to path through a temporary file in the same directory
    and a rename, as the CLI writes its outputs."""
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.',
                               dir=d)
    try:
        with os.fdopen(fd, 'wb') as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _id_type(ids):
    """'int' when every id is an int (so that ids read back from a
    vocabulary as text can be turned back into ints), else 'str'."""
    if ids and all(type(x) is int for x in ids):
        return 'int'
    return 'str'


def _ids_from_text(ids, kind):
    return [int(x) for x in ids] if kind == 'int' else list(ids)


class Interactions:
    """An interaction log with your own ids, and its dense form.

    Users and items may be any hashable ids (str, int, ...).  Users get
    dense ids 1..n_users in order of their first row; each user's rows are
    ordered by time (a stable sort: equal times keep their row order; the
    row order itself without times); items get dense ids 1..n_items in
    order of first appearance in those sequences, users in dense order and
    each sequence oldest first.  These are exactly the rules of `iadsr
    import` (docs/IMPORT.md, without its filters), so save_sequences() and
    save_vocab() write the very bytes `iadsr import` writes for the same
    log.

    Build one with from_arrays() or from_frame() (pandas), or load() the
    outputs of `iadsr import`.  Immutable.
    """

    def __init__(self, *args, **kw):
        raise TypeError('use Interactions.from_arrays(), from_frame() or '
                        'load()')

    @classmethod
    def _make(cls, user_ids, item_ids, seqs, times=None):
        self = object.__new__(cls)
        self._users = list(user_ids)
        self._items = list(item_ids)
        self._seqs = seqs            # per user: dense item ids, in order
        self._times = times          # per user: times, or None
        self._user_index = {u: i + 1 for i, u in enumerate(self._users)}
        self._item_index = {x: i + 1 for i, x in enumerate(self._items)}
        if len(self._user_index) != len(self._users):
            raise ValueError('user ids are not distinct')
        if len(self._item_index) != len(self._items):
            raise ValueError('item ids are not distinct')
        self._dataset = None
        return self

    @classmethod
    def from_arrays(cls, users, items, times=None):
        """From one row per interaction: users[r] interacted with items[r]
        (at times[r]).  Lists, numpy arrays or pandas Series; times are
        numbers (or anything ordered: datetimes, numpy datetime64),
        without NaN; None keeps the row order."""
        users = _tolist(users, 'users')
        items = _tolist(items, 'items')
        if len(users) != len(items):
            raise ValueError('users has %d entries and items %d; they must '
                             'be equal' % (len(users), len(items)))
        if times is not None:
            times = _tolist(times, 'times')
            if len(times) != len(users):
                raise ValueError('times has %d entries and users %d; they '
                                 'must be equal' % (len(times), len(users)))
            for r, t in enumerate(times):
                if t is None or t != t:  # NaN, NaT
                    raise ValueError('times[%d] is missing (%r): every row '
                                     'needs a time' % (r, t))
        for what, col in (('users', users), ('items', items)):
            for r, x in enumerate(col):
                if x is None or (isinstance(x, float) and x != x):
                    raise ValueError('%s[%d] is missing (%r)' % (what, r, x))
        user_index = {}
        rows = []                       # per dense user - 1: row indices
        for r, u in enumerate(users):
            try:
                k = user_index[u]
            except KeyError:
                k = user_index[u] = len(rows)
                rows.append([])
            except TypeError:
                raise TypeError('users[%d] = %r is not hashable' % (r, u))
            rows[k].append(r)
        if times is not None:
            try:
                rows = [sorted(rr, key=times.__getitem__) for rr in rows]
            except TypeError as e:
                raise TypeError('times cannot be ordered: %s' % e)
        item_index = {}
        item_ids = []
        seqs = []
        for rr in rows:
            s = []
            for r in rr:
                x = items[r]
                try:
                    i = item_index[x]
                except KeyError:
                    item_ids.append(x)
                    i = item_index[x] = len(item_ids)
                except TypeError:
                    raise TypeError('items[%d] = %r is not hashable'
                                    % (r, x))
                s.append(i)
            seqs.append(s)
        tseqs = None if times is None else \
            [[times[r] for r in rr] for rr in rows]
        return cls._make(list(user_index), item_ids, seqs, tseqs)

    @classmethod
    def from_frame(cls, df, user='user_id', item='item_id', time=None):
        """From a pandas DataFrame with one row per interaction: the
        columns user and item (names), ordered by the column time when
        given (numbers or datetimes), else by row order."""
        cols = list(df.columns)
        for role, c in (('user', user), ('item', item), ('time', time)):
            if c is not None and c not in cols:
                raise KeyError('%s column %r is not in the frame (columns: '
                               '%s)' % (role, c, ', '.join(map(str, cols))))
        times = None
        if time is not None:
            t = df[time]
            if t.isna().any():
                raise ValueError('time column %r has missing values' % time)
            times = t.tolist()
        return cls.from_arrays(df[user], df[item], times)

    @staticmethod
    def load_vocab(path):
        """(user_ids, item_ids) of a vocabulary file of `iadsr import`
        (docs/IMPORT.md): lists of str where entry i is dense id i + 1
        (bytes that are not UTF-8 come back as surrogate escapes)."""
        with open(path, 'rb') as fh:
            lines = fh.read().split(b'\n')
        if lines and lines[-1] == b'':
            lines.pop()
        if not lines or lines[0].rstrip(b'\r') != b'kind\tid\texternal':
            raise ValueError('%s: not a vocabulary of `iadsr import` (the '
                             'first line must be kind<TAB>id<TAB>external)'
                             % (path,))
        out = {b'user': {}, b'item': {}}
        for n, line in enumerate(lines[1:], 2):
            f = line.rstrip(b'\r').split(b'\t')
            if len(f) != 3 or f[0] not in out or not f[2]:
                raise ValueError('%s:%d: malformed vocabulary line' %
                                 (path, n))
            try:
                i = int(f[1])
            except ValueError:
                i = 0
            if i < 1 or i in out[f[0]]:
                raise ValueError('%s:%d: bad or repeated %s id %r' %
                                 (path, n, f[0].decode(), f[1]))
            out[f[0]][i] = f[2].decode('utf-8', 'surrogateescape')
        res = []
        for kind in (b'user', b'item'):
            d = out[kind]
            if sorted(d) != list(range(1, len(d) + 1)):
                raise ValueError('%s: the %s ids are not 1..%d' %
                                 (path, kind.decode(), len(d)))
            res.append([d[i] for i in range(1, len(d) + 1)])
        return res[0], res[1]

    @classmethod
    def load(cls, sequences, vocab):
        """From the two outputs of `iadsr import` (--out and --vocab); the
        ids are str.  Users of the sequence file must be 1..n_users of the
        vocabulary."""
        users, items = cls.load_vocab(vocab)
        seqs = [None] * len(users)
        with open(sequences, 'rb') as fh:
            for n, line in enumerate(fh, 1):
                f = line.split()
                if not f:
                    continue
                u = int(f[0])
                if not 1 <= u <= len(users) or seqs[u - 1] is not None:
                    raise ValueError('%s:%d: user %d is not in the vocabulary'
                                     ' or repeated' % (sequences, n, u))
                s = [int(x) for x in f[1:]]
                if any(not 1 <= i <= len(items) for i in s):
                    raise ValueError('%s:%d: an item is not in the '
                                     'vocabulary' % (sequences, n))
                seqs[u - 1] = s
        keep = [u for u in range(len(users)) if seqs[u] is not None]
        return cls._make([users[u] for u in keep], items,
                         [seqs[u] for u in keep])

    # -- sizes and ids --------------------------------------------------

    @property
    def n_users(self):
        return len(self._users)

    @property
    def n_items(self):
        return len(self._items)

    @property
    def n_interactions(self):
        return sum(len(s) for s in self._seqs)

    def __len__(self):
        return self.n_interactions

    @property
    def user_ids(self):
        """External user ids; entry i is dense user i + 1."""
        return list(self._users)

    @property
    def item_ids(self):
        """External item ids; entry i is dense item i + 1."""
        return list(self._items)

    def user_index(self, user):
        """The dense id (1..n_users) of an external user id; UnknownIdError
        when unknown."""
        try:
            return self._user_index[_plain(user)]
        except (KeyError, TypeError):
            raise UnknownIdError('unknown user id %r: not in these '
                                 'interactions' % (user,))

    def item_index(self, item):
        """The dense id (1..n_items) of an external item id; UnknownIdError
        when unknown."""
        try:
            return self._item_index[_plain(item)]
        except (KeyError, TypeError):
            raise UnknownIdError('unknown item id %r: not in these '
                                 'interactions' % (item,))

    def sequences(self, dense=False):
        """Each user's items in time order: dense ids (dense=True) or
        external ids."""
        if dense:
            return [list(s) for s in self._seqs]
        it = self._items
        return [[it[i - 1] for i in s] for s in self._seqs]

    def history(self, user):
        """A user's external item ids, oldest first."""
        it = self._items
        return [it[i - 1] for i in self._seqs[self.user_index(user) - 1]]

    def to_dataset(self):
        """A Dataset of the dense sequences (row u - 1 is dense user u;
        n_items of this log).  Cached: the same object each call."""
        if self._dataset is None or self._dataset.closed:
            self._dataset = Dataset.from_sequences(self._seqs,
                                                   n_items=self.n_items)
        return self._dataset

    def _rows(self):
        """(users, items, times or None): one entry per interaction, in
        dense order (users in order, each oldest first), external ids."""
        us, it = self._users, self._items
        users, items, times = [], [], [] if self._times is not None else None
        for k, s in enumerate(self._seqs):
            users.extend([us[k]] * len(s))
            items.extend(it[i - 1] for i in s)
            if times is not None:
                times.extend(self._times[k])
        return users, items, times

    def to_arrays(self):
        """A dict of lists 'user', 'item' (and 'time' when built with
        times), one entry per interaction in time order per user."""
        users, items, times = self._rows()
        out = {'user': users, 'item': items}
        if times is not None:
            out['time'] = times
        return out

    def to_frame(self):
        """The interactions as a pandas DataFrame (columns user, item and
        time when built with times), in time order per user."""
        pd = _pandas()
        if pd is None:
            raise ImportError('to_frame() needs pandas (and numpy); use '
                              'to_arrays()')
        return pd.DataFrame(self.to_arrays())

    # -- files shared with the CLI ---------------------------------------

    def _vocab_bytes(self, users=True, items=True):
        out = [b'kind\tid\texternal\n']
        for kind, ids, on in (('user', self._users, users),
                              ('item', self._items, items)):
            if not on:
                continue
            seen = {}
            for i, x in enumerate(ids, 1):
                b = _id_bytes(x, kind)
                if b in seen:
                    raise ValueError('%s ids %r and %r are the same text %r: '
                                     'a vocabulary cannot tell them apart' %
                                     (kind, ids[seen[b] - 1], x, b))
                seen[b] = i
                out.append(b'%s\t%d\t%s\n' % (kind.encode(), i, b))
        return b''.join(out)

    def save_vocab(self, path, users=True, items=True):
        """Write the vocabulary in the format of `iadsr import --vocab`
        (docs/IMPORT.md): the header kind<TAB>id<TAB>external, then one line
        per user and per item, users first, each in dense order.  Ids are
        written as text (str as UTF-8, bytes as they are, other ids as
        str(id)); an empty id, one holding a tab, CR, LF or NUL, or two ids
        with the same text raise ValueError.  Atomic (temporary file +
        rename)."""
        _write_atomic(path, self._vocab_bytes(users, items))

    def save_sequences(self, path):
        """Write the dense sequences in the format of `iadsr import --out`
        (one line per user: dense_user_id item item ...), atomically."""
        out = []
        for u, s in enumerate(self._seqs, 1):
            out.append(' '.join([str(u)] + [str(i) for i in s]) + '\n')
        _write_atomic(path, ''.join(out).encode('ascii'))

    def _encode_onto(self, user_ids, ext_seqs, what):
        """Sequences of external item ids -> dense ids of this log's items;
        items this log lacks are skipped (counted in one warning)."""
        idx = self._item_index
        seqs, unknown = [], 0
        for s in ext_seqs:
            d = []
            for x in s:
                try:
                    d.append(idx[_plain(x)])
                except (KeyError, TypeError):
                    unknown += 1
            seqs.append(d)
        if unknown:
            warnings.warn('%s: %d interaction(s) with items the model does '
                          'not know were skipped' % (what, unknown),
                          RuntimeWarning, stacklevel=3)
        return seqs

    def __repr__(self):
        return '<iadsr.Interactions users=%d items=%d interactions=%d>' % (
            self.n_users, self.n_items, self.n_interactions)


# Recommender parameters: the CLI's option names (`iadsr train --help`,
# dashes as underscores) -> (where, field of the params struct).
_MODEL_KEYS = {'backbone': 'backbone', 'dim': 'dim', 'max_len': 'max_seq_len',
               'layers': 'n_layers', 'heads': 'n_heads',
               'dropout': 'dropout', 'pre_ln': 'pre_ln',
               'ffn_dim': 'ffn_dim', 'activation': 'activation',
               'caser_window': 'caser_window', 'caser_h': 'caser_h_filters',
               'caser_v': 'caser_v_filters'}
_TRAIN_KEYS = {'epochs': 'max_epochs', 'lr': 'learning_rate',
               'batch': 'batch_size', 'patience': 'patience',
               'eval_every': 'eval_every', 'threads': 'n_threads',
               'weight_decay': 'weight_decay',
               'label_smoothing': 'label_smoothing',
               'history_penalty': 'history_penalty'}
_DENOISE_KEYS = {'lambda_align': 'lambda_align',
                 'lambda_recon': 'lambda_recon', 'tau_align': 'tau_align',
                 'tau_gumbel': 'tau_gumbel', 'theta': 'theta',
                 'max_drop': 'max_drop', 'protect_last': 'protect_last',
                 'collab_only': 'collab_only', 'carry_masks': 'carry_masks',
                 'paper_losses': 'paper_losses', 'gate': None,
                 'holdout': 'holdout', 'clean_scores': 'clean_scores',
                 'input_mask': 'input_mask', 'backoff': 'backoff',
                 'text_feature': 'text_feature'}
# The low-level names (Model.create / Trainer keywords): accepted by
# Recommender for one release, with a DeprecationWarning.
_OLD_KEYS = {'max_epochs': 'epochs', 'learning_rate': 'lr',
             'batch_size': 'batch', 'max_seq_len': 'max_len',
             'n_layers': 'layers', 'n_heads': 'heads', 'n_threads': 'threads',
             'caser_h_filters': 'caser_h', 'caser_v_filters': 'caser_v'}
_ALL_KEYS = set(_MODEL_KEYS) | set(_TRAIN_KEYS) | set(_DENOISE_KEYS) | \
    {'seed'}


def _cli_params(params, stacklevel=3):
    """Recommender keywords -> a dict of CLI names: old names renamed with
    a DeprecationWarning; unknown names and a name given twice (old and
    new) raise TypeError."""
    out = {}
    for key, value in params.items():
        new = _OLD_KEYS.get(key)
        if new is not None:
            warnings.warn('Recommender: %r is deprecated, use %r (the name '
                          'of `iadsr train --%s`); the old name will be '
                          'removed in the next release' %
                          (key, new, new.replace('_', '-')),
                          DeprecationWarning, stacklevel=stacklevel)
            if new in params:
                raise TypeError('Recommender: %r and %r name the same '
                                'parameter' % (key, new))
            key = new
        elif key not in _ALL_KEYS:
            raise TypeError('Recommender: unknown parameter %r (known: %s)'
                            % (key, ', '.join(sorted(_ALL_KEYS))))
        out[key] = value
    return out


def _split_params(p):
    """CLI-named params -> (model kwargs, train kwargs, denoise kwargs) of
    the low-level classes.  The denoising gate is the CLI's default: the
    detector with hold-out users, or the paper's rule with paper_losses
    or carry_masks."""
    model, train, den = {}, {}, {}
    for key, value in p.items():
        if key in _MODEL_KEYS:
            model[_MODEL_KEYS[key]] = value
        elif key in _TRAIN_KEYS:
            train[_TRAIN_KEYS[key]] = value
        elif key in _DENOISE_KEYS and key != 'gate':
            den[_DENOISE_KEYS[key]] = value
    if p.get('seed') is not None:
        model['seed'] = train['seed'] = den['seed'] = p['seed']
    gate = p.get('gate')
    if gate is None:
        gate = 'paper' if den.get('paper_losses') or \
            den.get('carry_masks') else 'detect'
    if gate not in ('detect', 'paper'):
        raise ValueError("gate must be 'detect' or 'paper', got %r" % (gate,))
    den['detect'] = gate == 'detect'
    if gate == 'detect':
        den.setdefault('holdout', True)
    den.setdefault('backoff', True)  # as `iadsr train --semantic`
    model.setdefault('backbone', 'sasrec')
    return model, train, den


class _Progress:
    """The per-epoch progress of Recommender.fit: a tqdm bar when tqdm is
    importable, else one line per epoch on standard error."""

    def __init__(self, max_epochs):
        self.bar = None
        try:
            from tqdm import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            self.bar = tqdm(total=max_epochs, unit='epoch', file=sys.stderr,
                            desc='iadsr fit', leave=True)

    def __call__(self, info):
        nd = info.valid_ndcg10
        if self.bar is not None:
            post = {'loss': '%.4f' % info.loss}
            if nd == nd:
                post['NDCG@10'] = '%.4f' % nd
            self.bar.set_postfix(post, refresh=False)
            self.bar.update(1)
        else:
            sys.stderr.write(
                'epoch %d/%d  loss %.4f  valid NDCG@10 %s  %.2f s\n' % (
                    info.epoch, info.max_epochs, info.loss,
                    '%.4f' % nd if nd == nd else 'n/a',
                    info.epoch_seconds))
            sys.stderr.flush()
        return False

    def close(self):
        if self.bar is not None:
            self.bar.close()


_SAVE_FORMAT = 1


class Recommender:
    """Next-item recommendations for your own users and items.

        rec = iadsr.Recommender(epochs=20, dim=64)
        rec.fit(iadsr.Interactions.from_frame(df, time='timestamp'))
        rec.recommend(users=['alice'], k=10)   # DataFrame user rank item score

    Parameters take the names of `iadsr train` options (dashes as
    underscores): backbone, epochs, lr, batch, dim, max_len, layers,
    heads, dropout, patience, seed, threads, eval_every, weight_decay,
    label_smoothing, history_penalty, pre_ln, ffn_dim, activation,
    caser_window, caser_h, caser_v; with semantic vectors also
    lambda_align, lambda_recon, tau_align, tau_gumbel, theta, max_drop,
    protect_last, collab_only, carry_masks, paper_losses, gate ('detect',
    the default, or 'paper'), holdout, clean_scores, input_mask, backoff,
    text_feature.
    Those not given keep the library's defaults (the CLI's).  The low-level
    names (max_epochs, learning_rate, batch_size, max_seq_len, n_layers,
    n_heads, n_threads, caser_h_filters, caser_v_filters) are accepted
    for this release with a DeprecationWarning.

    After fit: model (a Model), interactions (the Interactions it was
    fitted on: the histories recommend() uses), history (the ProgressInfo
    of every epoch), aligner and gate (with semantic vectors).
    """

    def __init__(self, **params):
        self.params = _cli_params(params)
        self.model = self.aligner = self.gate = None
        self.interactions = None
        self.history = []
        self._semantic = None
        self.noise_rate = self.theta = None

    def get_params(self):
        """The parameters given (CLI names)."""
        return dict(self.params)

    # -- training ---------------------------------------------------------

    def _semantic_matrix(self, inter, semantic):
        """semantic -> a Semantic whose row r is dense item r (padded).

        A dict {external item id: vector} or a pandas DataFrame indexed by
        item id (items without a vector get a zero row); a Semantic, a
        .npy path or a 2-D array in dense item order (row i = item_ids[i],
        or n_items + 1 rows with row 0 unused)."""
        pd = _pandas()
        if pd is not None and isinstance(semantic, pd.DataFrame):
            semantic = dict(zip(semantic.index.tolist(),
                                semantic.to_numpy(np.float32)))
        if isinstance(semantic, dict):
            vecs = {}
            dim = None
            for x, v in semantic.items():
                v = [float(t) for t in (v.tolist() if hasattr(v, 'tolist')
                                        else v)]
                if dim is None:
                    dim = len(v)
                elif len(v) != dim:
                    raise ValueError('semantic: the vectors have different '
                                     'lengths (%d and %d)' % (dim, len(v)))
                vecs[_plain(x)] = v
            if not dim:
                raise ValueError('semantic: no vectors')
            zero = [0.0] * dim
            known = sum(1 for x in inter._items if x in vecs)
            if not known:
                raise ValueError('semantic: no vector for any item of the '
                                 'interactions (are the keys the external '
                                 'item ids?)')
            rows = [zero] + [vecs.get(x, zero) for x in inter._items]
            if np is not None:
                semantic = np.asarray(rows, np.float32)
            else:
                flat = array.array('f')
                for r in rows:
                    flat.extend(r)
                semantic = (flat, (len(rows), dim))
            return Semantic.from_array(semantic, row0_padding=True)
        if isinstance(semantic, tuple):  # (array('f'), (rows, cols))
            row0 = semantic[1][0] == inter.n_items + 1
            return Semantic.from_array(semantic, row0_padding=row0)
        return _as_semantic(semantic, inter.n_items, None)

    def fit(self, interactions, semantic=None, verbose=True, **params):
        """Train on interactions (an Interactions, or a DataFrame with
        columns user_id and item_id) with the leave-one-out split: the
        last item of each user is the test target, the second-to-last the
        validation target (early stopping on validation NDCG@10).

        semantic: item vectors for IADSR (joint training of the backbone,
        aligner and denoising gate; needed by denoise()): a dict {item id:
        vector}, a DataFrame indexed by item id, or a matrix in dense item
        order (see _semantic_matrix).  params: as the constructor's,
        overriding them for this and later fits.  verbose: a tqdm bar when
        tqdm is importable, else one line per epoch on standard error
        (epoch, loss, validation NDCG@10, seconds); False prints nothing.

        Ctrl-C stops after the current epoch: the best model so far is
        kept (the Recommender is usable) and KeyboardInterrupt is raised.
        Returns self."""
        pd = _pandas()
        if pd is not None and isinstance(interactions, pd.DataFrame):
            interactions = Interactions.from_frame(interactions)
        if not isinstance(interactions, Interactions):
            raise TypeError('fit() takes an iadsr.Interactions (or a pandas '
                            'DataFrame), got %s' % type(interactions).__name__)
        if interactions.n_users == 0:
            raise ValueError('fit(): no interactions')
        self.params.update(_cli_params(params))
        mkw, tkw, dkw = _split_params(self.params)
        ds = interactions.to_dataset()
        backbone = mkw.pop('backbone')
        model = Model.create(interactions.n_items, backbone, **mkw)
        sem = None
        if semantic is not None:
            sem = self._semantic_matrix(interactions, semantic)
            trainer = Trainer.joint(ds, model, sem, denoise=dkw, **tkw)
        else:
            trainer = Trainer(ds, model, **tkw)
        model.close()
        history = []
        progress = _Progress(tkw.get('max_epochs', _train_params({})
                                     .max_epochs)) if verbose else None

        def callback(info):
            history.append(info)
            if progress is not None:
                progress(info)
            return False

        try:
            with trainer:
                try:
                    trainer.fit(callback)
                except BaseException:
                    # Ctrl-C (KeyboardInterrupt) included: keep the best
                    # weights so far, then let the exception go on
                    try:
                        self._adopt(trainer, interactions, sem, history)
                    except Exception:
                        pass
                    raise
                self._adopt(trainer, interactions, sem, history)
        finally:
            if progress is not None:
                progress.close()
        return self

    def _adopt(self, trainer, inter, sem, history):
        model = trainer.snapshot()
        aligner = gate = None
        if sem is not None:
            aligner, gate = trainer.snapshot_denoiser()
        self.model, self.aligner, self.gate = model, aligner, gate
        self._semantic = sem
        self.interactions = inter
        self.history = history
        self.noise_rate = self.theta = None

    def _check_fitted(self):
        if self.model is None:
            raise RuntimeError('this Recommender is not fitted: call fit() '
                               'or Recommender.load() first')

    def _threads(self):
        return self.params.get('threads', 1)

    # -- recommendations ---------------------------------------------------

    def recommend(self, users=None, histories=None, k=10, exclude_seen=True):
        """The k best next items per user, best first, as external ids.

        users: external user ids of the fitted data (None: all of them, in
        dense order); an unknown id raises UnknownIdError.  histories: a
        list of item-id lists (oldest first) to recommend after instead,
        e.g. for new users; items the model does not know are skipped
        (RuntimeWarning); users then labels them (same length), else the
        rows are labelled 0, 1, ...  exclude_seen: never recommend an item
        of the user's history.

        Returns a pandas DataFrame with columns user, rank (1..k), item,
        score when pandas is available, else a list of dicts with those
        keys.  Fewer than k rows per user only when exclude_seen leaves
        fewer candidates."""
        self._check_fitted()
        inter = self.interactions
        k = operator.index(k)
        if k < 1:
            raise ValueError('k must be >= 1, got %d' % k)
        k = min(k, inter.n_items)
        if histories is None:
            if users is None:
                labels = inter.user_ids
                seqs = inter._seqs
            else:
                labels = _tolist(users, 'users')
                seqs = []
                for u in labels:
                    try:
                        seqs.append(inter._seqs[inter._user_index[u] - 1])
                    except (KeyError, TypeError):
                        raise UnknownIdError(
                            'unknown user id %r: not in the data the model '
                            'was fitted on (for a new user pass '
                            'histories=[[item, ...]])' % (u,))
        else:
            hist = [_tolist(h, 'histories[%d]' % n)
                    for n, h in enumerate(histories)]
            if users is None:
                labels = list(range(len(hist)))
            else:
                labels = _tolist(users, 'users')
                if len(labels) != len(hist):
                    raise ValueError('users has %d entries and histories %d;'
                                     ' they must be equal' %
                                     (len(labels), len(hist)))
            seqs = inter._encode_onto(labels, hist, 'recommend')
            for lab, s in zip(labels, seqs):
                if not s:
                    raise ValueError('the history of user %r holds no item '
                                     'the model knows: nothing to recommend '
                                     'from' % (lab,))
        rows = []
        if seqs:
            with Context(self.model) as ctx:
                ids, scores = ctx.topk_batch(seqs, k,
                                             exclude_history=exclude_seen)
            ids = ids.tolist() if np is not None else \
                [ids[r * k:(r + 1) * k] for r in range(len(seqs))]
            scores = scores.tolist() if np is not None else \
                [scores[r * k:(r + 1) * k] for r in range(len(seqs))]
            items = inter._items
            for lab, ir, sr in zip(labels, ids, scores):
                for rank, (i, sc) in enumerate(zip(ir, sr), 1):
                    if i < 1:
                        break
                    rows.append({'user': lab, 'rank': rank,
                                 'item': items[i - 1], 'score': float(sc)})
        pd = _pandas()
        if pd is not None:
            return pd.DataFrame(rows, columns=['user', 'rank', 'item',
                                               'score'])
        return rows

    def _dataset_of(self, interactions, what):
        """None -> the fitted data; an Interactions (or DataFrame) ->
        a Dataset over this model's dense item ids, with its users."""
        inter = self.interactions
        if interactions is None:
            return inter, inter.to_dataset()
        pd = _pandas()
        if pd is not None and isinstance(interactions, pd.DataFrame):
            interactions = Interactions.from_frame(interactions)
        if not isinstance(interactions, Interactions):
            raise TypeError('%s() takes an iadsr.Interactions (or a pandas '
                            'DataFrame), got %s' %
                            (what, type(interactions).__name__))
        seqs = inter._encode_onto(interactions._users,
                                  interactions.sequences(), what)
        # keep the times of the kept rows: denoise() reports them
        times = None
        if interactions._times is not None:
            times = []
            for s, t in zip(interactions.sequences(), interactions._times):
                times.append([tt for x, tt in zip(s, t)
                              if _plain(x) in inter._item_index])
        enc = Interactions._make(interactions._users, inter._items, seqs,
                                 times)
        return enc, Dataset.from_sequences(seqs, n_items=inter.n_items)

    def evaluate(self, interactions=None, ks=(5, 10, 20),
                 exclude_seen=False, target='test'):
        """Leave-one-out full-ranking metrics with the keys of `iadsr eval
        --json`: 'users', 'HR@K' and 'NDCG@K' for each K of ks, 'MRR'.
        interactions: None (the fitted data: each user's last item is the
        target, the one training never saw) or other interactions of the
        same items (unknown items skipped).  target: 'test' or 'valid'."""
        self._check_fitted()
        _, ds = self._dataset_of(interactions, 'evaluate')
        _, ranks = evaluate_ranks(self.model, ds, target, self._threads(),
                                  exclude_seen)
        return metrics_from_ranks(ranks, ks)

    # -- denoising -------------------------------------------------------

    def denoise(self, interactions=None, split='loo', keep_all=False):
        """The interactions the IADSR gate keeps, with their gate scores.

        Only for a Recommender fitted with semantic vectors (RuntimeError
        otherwise).  interactions: None (the fitted data) or other
        interactions of the same items.  split='loo' judges each user's
        training part and keeps the last two items (score NaN); 'none'
        judges whole sequences.  A detector gate (the default) takes its
        threshold from the data, as `iadsr denoise` does (the estimate is
        left in self.noise_rate and self.theta).

        Returns a DataFrame (pandas) or a dict of lists with the columns
        user, item, (time,) score of the kept interactions in time order
        per user; keep_all=True returns every interaction with a column
        kept."""
        self._check_fitted()
        if self.gate is None or self.aligner is None or \
                self._semantic is None:
            raise RuntimeError('denoise() needs a Recommender fitted with '
                               'semantic vectors: fit(interactions, '
                               'semantic=...)')
        enc, ds = self._dataset_of(interactions, 'denoise')
        threads = self._threads()
        gate = self.gate
        den = Denoiser(self.model, self.aligner, gate, self._semantic)
        try:
            if gate.params()['flags'] & _DENOISE_F_DETECT and \
                    'theta' not in self.params:
                th, rate = den.propose_theta(ds, split, n_threads=threads)
                self.theta, self.noise_rate = th, rate
                den.close()
                gate = gate.with_params(theta=th)
                den = Denoiser(self.model, self.aligner, gate,
                               self._semantic)
            _, keep, scores = den.clean_dataset(ds, split, n_threads=threads,
                                                return_details=True)
        finally:
            den.close()
        users, items, times = enc._rows()
        keep = [bool(x) for x in keep]
        scores = [float(x) for x in scores]
        out = {'user': users, 'item': items}
        if times is not None:
            out['time'] = times
        out['score'] = scores
        if keep_all:
            out['kept'] = keep
        else:
            out = {c: [v for v, kp in zip(col, keep) if kp]
                   for c, col in out.items()}
        pd = _pandas()
        return pd.DataFrame(out) if pd is not None else out

    # -- saving ------------------------------------------------------------

    def save(self, path):
        """Save to the directory path (created if needed; files of the same
        names are replaced, atomically each):

          model.iadsr      the checkpoint: backbone with the items'
                           external ids (text), plus aligner and gate when
                           fitted with semantic vectors
          vocab.tsv        the users' external ids, in the vocabulary
                           format of `iadsr import` (user lines only)
          sequences.txt    the fitted histories (dense ids, the sequence
                           format of the CLI)
          semantic.npy     the semantic matrix (row i = item i), if any
          recommender.json parameters, the id types, the format version

        So `iadsr recommend --model DIR/model.iadsr --data
        DIR/sequences.txt --vocab DIR/vocab.tsv --k 10` prints the same
        recommendations with your ids.  Ids are stored as text; when every
        user (or item) id is an int they come back as ints from load(),
        other ids come back as str."""
        self._check_fitted()
        inter = self.interactions
        os.makedirs(path, exist_ok=True)
        item_text = [_id_bytes(x, 'item') for x in inter._items]
        if len(set(item_text)) != len(item_text):
            raise ValueError('two item ids have the same text: the '
                             'checkpoint cannot tell them apart')
        model = self.model.with_item_ids(item_text)
        try:
            save_checkpoint(os.path.join(path, 'model.iadsr'), model,
                            self.aligner, self.gate)
        finally:
            model.close()
        _write_atomic(os.path.join(path, 'vocab.tsv'),
                      inter._vocab_bytes(items=False))
        inter.save_sequences(os.path.join(path, 'sequences.txt'))
        if self._semantic is not None:
            self._semantic.save_npy(os.path.join(path, 'semantic.npy'),
                                    row0_padding=True)
        meta = {'format': _SAVE_FORMAT, 'library': version(),
                'params': self.params,
                'user_ids': _id_type(inter._users),
                'item_ids': _id_type(inter._items),
                'semantic': self._semantic is not None,
                'n_users': inter.n_users, 'n_items': inter.n_items}
        _write_atomic(os.path.join(path, 'recommender.json'),
                      (json.dumps(meta, indent=1, sort_keys=True) + '\n')
                      .encode('utf-8'))

    @classmethod
    def load(cls, path):
        """A Recommender saved by save(path), ready to recommend,
        evaluate and (with semantic vectors) denoise."""
        with open(os.path.join(path, 'recommender.json'), 'rb') as fh:
            meta = json.loads(fh.read().decode('utf-8'))
        if meta.get('format') != _SAVE_FORMAT:
            raise ValueError('%s: unknown Recommender format %r' %
                             (path, meta.get('format')))
        model, aligner, gate = load_checkpoint(
            os.path.join(path, 'model.iadsr'))
        items = model.item_ids
        if items is None or len(items) != model.n_items:
            raise ValueError('%s: the checkpoint carries no item ids' % path)
        users, _ = Interactions.load_vocab(os.path.join(path, 'vocab.tsv'))
        seqs = [None] * len(users)
        with open(os.path.join(path, 'sequences.txt'), 'rb') as fh:
            for line in fh:
                f = line.split()
                if f:
                    seqs[int(f[0]) - 1] = [int(x) for x in f[1:]]
        if any(s is None for s in seqs):
            raise ValueError('%s: sequences.txt lacks a user of vocab.tsv'
                             % path)
        inter = Interactions._make(
            _ids_from_text(users, meta.get('user_ids')),
            _ids_from_text(items, meta.get('item_ids')), seqs)
        self = cls.__new__(cls)
        cls.__init__(self)
        self.params = dict(meta.get('params') or {})
        self.model, self.aligner, self.gate = model, aligner, gate
        self.interactions = inter
        if meta.get('semantic'):
            self._semantic = Semantic.load_npy(
                os.path.join(path, 'semantic.npy'), row0_padding=True)
        return self

    def __repr__(self):
        if self.model is None:
            return '<iadsr.Recommender unfitted>'
        return '<iadsr.Recommender %s users=%d items=%d%s>' % (
            self.model.backbone, self.interactions.n_users,
            self.interactions.n_items,
            ' semantic' if self._semantic is not None else '')
