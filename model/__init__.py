"""The network: backbones, the classifier+embedding head, saving and loading, and the runtimes that run it.

Serving imports only ``model.inference`` (with the card and the preprocessing it reads), which never loads
TensorFlow; the Keras network is in ``model.network`` and training in ``model.training``.
"""
