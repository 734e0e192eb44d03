"""int8 features: ONNX Runtime's static quantization (QDQ: int8 weights per channel, uint8 activations calibrated
on 16 training images) of the features model's float32 ONNX export. It is used only after a check on the machine
at hand: per-image cosine similarity with the float32 features, and a speed-up, on training images other
than the calibration's. The quantized model and the check's result are kept in the cache folder, keyed by the
float32 model and the calibration images."""

import json
import logging
import time
from pathlib import Path

import numpy as np

from catdog.errors import CatdogError
from catdog.utils.io import atomic_path, write_json
from catdog.utils.progress import working

log = logging.getLogger(__name__)

COSINE_MEAN, COSINE_MIN = 0.99, 0.95  # per image, against float32 (MobileNetV2 here: 0.996 and 0.989)
SPEEDUP = 1.2  # int8 must be at least this much faster on the check images
CALIBRATION_IMAGES, CHECK_IMAGES = 16, 128  # more calibration images held the same cosine and cost memory


def quantize(fp32_file, out_file, calibration, input_name, batch_size=32) -> None:
    """`fp32_file` (whose input is `input_name`) quantized into `out_file`, its activations' ranges from the
    `calibration` images."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Batches(CalibrationDataReader):
        def __init__(self, name):
            self.batches = iter([{name: calibration[i:i + batch_size]} for i in range(0, len(calibration), batch_size)])

        def get_next(self):
            return next(self.batches, None)

    with atomic_path(out_file) as partial:
        prepared = Path(partial).with_name(Path(partial).name + ".pre.onnx")
        try:
            quant_pre_process(str(fp32_file), str(prepared))
            quantize_static(str(prepared), str(partial), Batches(input_name), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            prepared.unlink(missing_ok=True)


def check(fp32_session, int8_session, images, batch_size=64) -> dict:
    """The int8 features against the float32 ones on `images`: cosine similarity per image, and the time of
    each (the better of two passes after a warm-up batch)."""
    def timed(session):
        name = session.get_inputs()[0].name
        session.run(None, {name: images[:batch_size]})
        best, out = None, None
        for _ in range(2):
            start = time.perf_counter()
            out = np.concatenate([session.run(None, {name: images[i:i + batch_size]})[0]
                                  for i in range(0, len(images), batch_size)])
            best = min(best or np.inf, time.perf_counter() - start)
        return out.reshape(len(images), -1), best

    (a, fp32_seconds), (b, int8_seconds) = timed(fp32_session), timed(int8_session)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosine = np.where(norms > 0, (a * b).sum(1) / np.maximum(norms, 1e-12), 1.0)
    result = {"images": len(images), "cosine_mean": float(cosine.mean()), "cosine_min": float(cosine.min()),
              "fp32_seconds": fp32_seconds, "int8_seconds": int8_seconds, "speedup": fp32_seconds / int8_seconds}
    close = result["cosine_mean"] >= COSINE_MEAN and result["cosine_min"] >= COSINE_MIN
    fast = result["speedup"] >= SPEEDUP
    result["passed"] = close and fast
    figures = (f"cosine with float32 {result['cosine_mean']:.4f} mean, {result['cosine_min']:.4f} min; "
               f"{result['speedup']:.2f}x as fast, on {len(images)} training images")
    result["reason"] = (f"int8 passed its check ({figures})" if result["passed"] else
                        f"int8 failed its check ({figures}; needs cosine >= {COSINE_MEAN} mean, >= {COSINE_MIN} "
                        f"min, and >= {SPEEDUP}x)")
    return result


def int8_session(fp32_file, calibration, images, cache_dir, key):
    """(session or None, the check's result): the quantized model of `fp32_file` where its check passes on this
    machine; read from `cache_dir` (model and result) when it was made before."""
    import onnxruntime

    model, record = Path(cache_dir) / f"features-int8-{key}.onnx", Path(cache_dir) / f"features-int8-{key}.json"
    result = None
    if record.is_file():
        try:
            result = json.loads(record.read_text())
        except ValueError:
            log.warning("Ignoring the unreadable int8 check %s; checking again.", record)
    if result is not None and not result["passed"]:
        return None, result
    fp32 = onnxruntime.InferenceSession(str(fp32_file), providers=["CPUExecutionProvider"])
    session = None
    if result is not None and model.is_file():
        try:
            session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's exception types are not public
            log.warning("Ignoring the unreadable int8 model %s (%s); quantizing again.", model,
                        str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
    try:
        if session is None:
            with working(f"Quantizing the features model to int8 ({len(calibration)} calibration images)"):
                quantize(fp32_file, model, calibration, fp32.get_inputs()[0].name)
            session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    except (CatdogError, OSError) as exc:
        return None, {"passed": False, "reason": f"int8 could not be made ({type(exc).__name__}: {exc})"}
    except Exception as exc:  # ONNX Runtime's quantization raises many types for graphs it cannot take
        model.unlink(missing_ok=True)
        return None, {"passed": False, "reason": f"int8 quantization failed ({type(exc).__name__}: "
                                                 f"{str(exc).splitlines()[0][:200] if str(exc) else ''})"}
    if result is None:
        result = check(fp32, session, images)
        write_json(record, result)
    return (session if result["passed"] else None), result
