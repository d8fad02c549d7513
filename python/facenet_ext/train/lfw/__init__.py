"""LFW for the trainer: its protocol files and splits (:mod:`.protocol`), its faces and pairs as the trainer
loads them (:mod:`.data`) and the pieces of the MagFace-on-LFW quality experiment (:mod:`.quality`). The
pair-list file format itself (``pairs.txt``, also written for any image folder) is
:mod:`facenet_ext.eval.lfw_pairs`."""
