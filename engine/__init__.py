"""Where the heavy steps run: in this process (``local``) or as Ray tasks (``ray``), chosen by settings.

A step splits its rows into customer partitions (:mod:`engine.partition`) and maps one pure
function over them (:func:`engine.runner.open_engine`); the local engine calls it once on every
row, the Ray engine once per partition on the cluster, so both give the same answers.
"""
