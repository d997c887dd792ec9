"""The network: backbones, the classifier+embedding head, image decoding, saving and loading.

Serving imports only ``model.network`` and ``model.images``; training lives in ``model.training``.
"""
