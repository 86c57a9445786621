"""The chapters' own code, one module per chapter, generated from the notebooks.

``chNN_topic.py`` holds the cells of ``notebooks/NN_topic.ipynb`` marked ``# export`` (see
``gen_utils.export``): the models and helpers a later chapter builds on, e.g.
``from gen_utils.chapters.ch04_gan import Generator, dcgan_init``. Never edit these modules by
hand: edit the notebook and run ``make export``.
"""
