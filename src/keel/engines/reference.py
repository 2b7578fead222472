"""A reference's three summaries, made batch by batch the same way on every engine.

A baseline holds a profile, a bottom-k sample (``keel.sample.HashSample``) and a content
fingerprint (``keel.fingerprint.ContentFingerprint``) of its reference. One process makes
them over its batches, each Spark partition over its own (``keel.engines.spark``), and the
parts merge: this is the one place a batch goes into them.

>>> import pyarrow as pa
>>> from keel.profile import Profile
>>> from keel.schema import Schema
>>> table = pa.table({"x": [1.0, 2.0, 3.0]})
>>> profile = Profile.empty(Schema.infer(table))
>>> sample, fingerprint = HashSample(2, seed=0), ContentFingerprint()
>>> summarize_batch(table, profile, sample, fingerprint)
>>> profile.rows, sample.table().num_rows, fingerprint.rows
(3, 2, 3)
"""

from __future__ import annotations

import pyarrow as pa

from keel.fingerprint import ContentFingerprint, row_hashes
from keel.profile import Profile
from keel.sample import HashSample


def summarize_batch(
    batch: pa.RecordBatch | pa.Table,
    profile: Profile,
    sample: HashSample,
    fingerprint: ContentFingerprint,
) -> None:
    """One reference batch into a baseline's three summaries; its row hashes made once.
    Every engine (one process, Spark's partitions) goes through here."""
    profile.update(batch)
    if batch.num_rows:
        hashes = row_hashes(batch)
        sample.update(batch, hashes)
        fingerprint.update(batch, hashes)
    elif fingerprint.columns is None:
        fingerprint.columns = list(batch.schema.names)
