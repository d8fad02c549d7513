"""The command-line subcommands that ``python -m facenet_ext`` dispatches to: ``train`` (:mod:`.train`),
``eval`` (:mod:`.evaluate`), ``lfw-view2`` (:mod:`.lfw_view2`) and the demo's LFW line and notes on its
own numbers (:mod:`.demo_lfw`, :mod:`.demo_notes`). Each holds a command's options and its run; the work
itself is in the trainer's modules."""
