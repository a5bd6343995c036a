"""White-box watermarking (Uchida et al. 2017) and its recovery after a permutation attack.

Typical use::

    from nnforensics import load_model
    from nnforensics.watermark import make_key, save_key, embed, extract, verify

    model = load_model("lenet.safetensors")
    key, note = make_key(model, "fc1", 64)              # secret: keep it apart from the model
    marked = embed(model, key, "mnist", epochs=1)        # fine-tune with lambda * BCE(sigmoid(X w), b)
    save_key("key.json", key)
    extract(marked.model, key).detected                  # True (BER 0)
    verify(permuted_copy, model, key).resynchronized     # re-synchronize first, then extract

The sweep helper :func:`watermark_ber` returns the bit error rate (%) of a model.
"""

from .embedding import EmbedResult, VerifyResult, embed, embedding_recipe, verify
from .key import (
    DEFAULT_BITS,
    DEFAULT_STRENGTH,
    KEY_FORMAT,
    WatermarkKey,
    decode_message,
    key_from_dict,
    key_matrix,
    load_key,
    make_key,
    message_bits,
    save_key,
)
from .scheme import (
    DEFAULT_FPR,
    ExtractResult,
    detection_threshold,
    extract,
    extract_bits,
    key_weight,
    mean_filter,
    min_bits,
    p_value,
    projections,
    watermark_ber,
    watermark_loss,
)

__all__ = [
    "DEFAULT_BITS",
    "DEFAULT_FPR",
    "DEFAULT_STRENGTH",
    "KEY_FORMAT",
    "EmbedResult",
    "ExtractResult",
    "VerifyResult",
    "WatermarkKey",
    "decode_message",
    "detection_threshold",
    "embed",
    "embedding_recipe",
    "extract",
    "extract_bits",
    "key_from_dict",
    "key_matrix",
    "key_weight",
    "load_key",
    "make_key",
    "mean_filter",
    "message_bits",
    "min_bits",
    "p_value",
    "projections",
    "save_key",
    "verify",
    "watermark_ber",
    "watermark_loss",
]
