"""Moving models to and from other frameworks: PyTorch state dicts (torch.py), Keras 3 files (keras.py)."""

from .torch import from_torch_state_dict, to_torch_state_dict

__all__ = ["from_torch_state_dict", "to_torch_state_dict"]
