"""ONNX Runtime's execution providers for a Triton Python-backend instance.

Shared by every model.py of the repository (sluice-chat/1 holds it, the other
version directories link to it): Triton puts a model's version directory on
the Python path, so `from execution_providers import execution_providers` finds
the file beside model.py.
"""
import onnxruntime as ort


def execution_providers(args):
    """ONNX Runtime's providers for where Triton placed this instance.

    Triton passes the instance's place in initialize(args): model_instance_kind
    "GPU" with model_instance_device_id for a KIND_GPU instance, "CPU"
    otherwise. A GPU instance runs on that GPU with CUDA (onnxruntime-gpu,
    deploy/triton/Dockerfile) and refuses to start without it rather than
    silently computing on the CPU of a GPU node.
    """
    if args.get("model_instance_kind") != "GPU":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        raise RuntimeError(
            "this instance is placed on GPU %s, but ONNX Runtime has no CUDAExecutionProvider "
            "(expected onnxruntime-gpu, as deploy/triton/Dockerfile installs; got providers %s)"
            % (args.get("model_instance_device_id"), ort.get_available_providers())
        )
    return [("CUDAExecutionProvider", {"device_id": int(args["model_instance_device_id"])}), "CPUExecutionProvider"]

