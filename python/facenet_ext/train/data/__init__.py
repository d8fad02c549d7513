"""The trainer's data: image sets from folders or scikit-learn's digits (:mod:`.images`), the decoded-image
cache of large folders such as LFW (:mod:`.face_cache`), the training-time degradations (:mod:`.degrade`)
and the batch samplers, P x K and others (:mod:`.sampler`)."""
