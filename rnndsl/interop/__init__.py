"""Moving models to and from other frameworks: PyTorch state dicts (torch.py), Keras 3 files
(keras.py), ONNX graphs (onnx.py)."""

from .onnx import export_onnx, to_onnx
from .torch import from_torch_state_dict, to_torch_state_dict

__all__ = ["export_onnx", "from_torch_state_dict", "to_onnx", "to_torch_state_dict"]
