"""The release layouts of the classification datasets, one reader each (name → loader).

* ``food101``       — :func:`~modalink.classification.sources.food101.load_food101` (UPMC Food-101)
* ``mmimdb``        — :func:`~modalink.classification.sources.mmimdb.load_mmimdb` (MM-IMDb)
* ``hateful_memes`` — :func:`~modalink.classification.sources.hateful_memes.load_hateful_memes`
* ``ferramenta``    — :func:`~modalink.classification.sources.ferramenta.load_ferramenta`

Each parses its files into :class:`~modalink.classification.records.MultimodalRecord` s and
returns a :class:`~modalink.classification.records.MultimodalDataset`;
:func:`modalink.classification.records.load_dataset` picks the loader by name.
"""
