# Writes compressed_mixed.npz with numpy 1.26.4: np.savez_compressed of Haiku-style
# `scope//name` members in the layouts numpy keeps as they are (Fortran order, big-endian,
# 0-d, bool). Run once with a Python that has numpy; the tests only read the file.
import numpy as np

w = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
b = np.array([0.5, -1.0, 2.0], dtype=">f8")
np.savez_compressed(
    "compressed_mixed.npz",
    **{
        "mlp/~/linear_0//w": w,
        "mlp/~/linear_0//b": b,
        "counter//count": np.array(7, dtype=np.int32),
        "mask//m": np.array([True, False]),
    },
)
