"""Embedding, text and image columns, turned into what keel profiles and tests.

A baseline names its unstructured columns (``Baseline.from_data(frame,
embeddings=["vec"], texts=["comment"], images=["photo"])``); every batch of the
reference and of each current window is then *expanded* the same way, with the state
fitted on the reference:

* an **embedding** column (Arrow fixed-size or variable lists of numbers, or a pandas
  column of 1-D arrays) keeps its vectors; a vector of another dimension than the
  reference's, or with a missing value, is a fault (counted by reason, never raised);
* a **text** column gains numeric descriptors ``<col>.length``, ``.words``, ``.oov_rate``
  (against the baseline's vocabulary), ``.non_letter_share`` and a categorical
  ``.script`` (``keel.profile.text_descriptors``), and its vectors are the TF-IDF + SVD
  projection fitted on the baseline (``keel.profile.text_vectorizer``); an empty text is
  a fault;
* an **image** column (``.npy`` paths, encoded bytes — ``.npy``, or any format Pillow reads
  when it is installed — or a pandas column of H × W (× 3) arrays) gains ``<col>.brightness``,
  ``.contrast``, ``.saturation``, ``.sharpness``, ``.height``, ``.width`` and ``.aspect``
  (``keel.profile.images``), and its vectors are the 16 × 16 downsampled luma; an image
  that cannot be decoded is a fault naming its file (or row).

The derived columns are ordinary numeric and categorical features: profiled, binned,
drift-tested and diagnosed like any other. The column itself becomes a ``VECTOR_TYPE``
struct profiled as kind ``embedding`` (``keel.profile.vectors``): its verdict is one MMD
test (``keel.stats.mmd``) between the two sides' vector samples.

>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> frame = pd.DataFrame({"comment": ["a red cat", "the dog", "", None],
...                       "vec": list(rng.normal(size=(4, 3)))})
>>> columns = Unstructured.fit(frame, {"comment": "text", "vec": "embedding"})
>>> expanded = columns.expand(frame).read_all()
>>> expanded.column_names
['comment', 'comment.length', 'comment.words', 'comment.oov_rate', 'comment.non_letter_share',
 'comment.script', 'vec']
>>> expanded.column("comment.length").to_pylist()
[9.0, 7.0, 0.0, None]
>>> expanded.column("comment").combine_chunks().field("fault").to_pylist()[2]
'empty text :: row 2'
>>> columns.dimensions
{'vec': 3}
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from keel.errors import DataError, FormatError, SchemaError
from keel.profile import images as image_module
from keel.profile import text_descriptors as text_module
from keel.profile.vectors import FITTED, VECTOR_TYPE

ROLES = ("embedding", "text", "image")
STATE_FORMAT = 1
#: Texts the vectorizer and the vocabulary are fitted on (a bottom-k by content hash).
FIT_TEXTS = 20_000
#: The side of the downsampled luma grid an image's vector is made of.
IMAGE_GRID = 16
#: Images decoded and summarised together (their pixels are in memory at once).
IMAGE_CHUNK = 128
TEXT_DIMENSIONS = 64
_SEPARATOR = " :: "  # "reason :: name" in a fault


@dataclass
class Unstructured:
    """The unstructured columns of a baseline and what was fitted on its reference."""

    roles: dict[str, str]
    dimensions: dict[str, int] = field(default_factory=dict)
    vectorizers: dict[str, Any] = field(default_factory=dict)  # column -> TextVectorizer
    vocabularies: dict[str, frozenset[str]] = field(default_factory=dict)
    #: Expanding the reference itself: its texts the vectorizer was fitted on (half, by
    #: content) give no vector and no out-of-vocabulary rate, which would be in-sample
    #: (closer to the fit than any new text is); the other half is the reference.
    reference: bool = field(default=False, compare=False)

    @classmethod
    def fit(cls, data: Any, roles: Mapping[str, str], seed: int = 0) -> Unstructured:
        """Fit on the reference: each embedding's dimension (the most common among the first
        batch's vectors), each text column's vocabulary and vectorizer (on up to 20,000 of
        its texts, a bottom-k sample by content)."""
        from keel.data import open_source
        from keel.profile.text_vectorizer import TextVectorizer
        from keel.sample import HashSample

        source = open_source(prepared(data, roles))
        for name, role in roles.items():
            if role not in ROLES:
                raise SchemaError(f"column {name!r}: unknown unstructured role {role!r}; {ROLES}")
            if name not in source.schema.names:
                raise SchemaError(
                    f"column {name!r} is not in {source.name} (columns: {source.schema.names})"
                )
        fitted = cls(dict(roles))
        for name in [n for n, r in roles.items() if r == "embedding"]:
            column_type = source.schema.field(name).type
            if not (
                pa.types.is_list(column_type)
                or pa.types.is_fixed_size_list(column_type)
                or pa.types.is_large_list(column_type)
            ):
                raise SchemaError(
                    f"column {name!r} is declared an embedding but holds {column_type}: "
                    "give lists of numbers (an Arrow fixed-size list, or 1-D arrays)"
                )
            lengths = None
            for batch in source.batches(columns=[name]):
                lengths = pc.list_value_length(batch.column(name)).drop_null()
                if len(lengths):
                    break
            if lengths is None or not len(lengths):
                raise DataError(f"column {name!r}: no vectors in the reference")
            values, counts = np.unique(lengths.to_numpy(), return_counts=True)
            fitted.dimensions[name] = int(values[np.argmax(counts)])
        for name in [n for n, r in roles.items() if r == "text"]:
            sample = HashSample(FIT_TEXTS, seed)
            for batch in source.batches(columns=[name]):
                texts = pc.cast(batch.column(name), pa.string())
                chosen = pc.and_(pc.is_valid(texts), pa.array(fitting_half(texts)))
                sample.update(pa.table({name: texts.filter(chosen)}))
            table = sample.table()
            texts = [] if table is None else table.column(name).to_pylist()
            fitted.vocabularies[name] = text_module.vocabulary(texts)
            fitted.vectorizers[name] = TextVectorizer.fit(texts, dimensions=TEXT_DIMENSIONS)
        return fitted

    def derived(self, name: str) -> list[str]:
        """The columns ``name`` adds beside itself."""
        role = self.roles[name]
        if role == "image":
            return [f"{name}.{statistic}" for statistic in image_module.COLUMNS]
        if role == "text":
            return [f"{name}.{d}" for d in (*text_module.COLUMNS, "script")]
        return []

    def kinds(self) -> dict[str, str]:
        """The kind of each column the expansion makes (the derived ones as inferred)."""
        return dict.fromkeys(self.roles, "embedding")

    def expand_batch(self, batch: pa.RecordBatch, offset: int = 0) -> pa.RecordBatch:
        """The batch with each unstructured column replaced by its vectors, and its derived
        columns after it. ``offset`` is the batch's first row in the data (rows are named
        by position when a fault has no file to name)."""
        arrays, names = [], []
        for position, name in enumerate(batch.schema.names):
            column = batch.column(position)
            role = self.roles.get(name)
            if role is None:
                arrays.append(column)
                names.append(name)
                continue
            vectors, derived = _EXPANDERS[role](self, name, column, offset)
            arrays.append(vectors)
            names.append(name)
            for derived_name, values in derived.items():
                arrays.append(values)
                names.append(derived_name)
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def infer_schema(self, data: Any, roles: Mapping[str, str], kinds: Mapping[str, str]) -> Any:
        """The ``keel.schema.Schema`` of the expanded data, inferred without expanding it:
        the plain columns as ``Schema.infer`` finds them (reading only those), each
        unstructured column as kind ``embedding`` and its derived columns as numeric (the
        script categorical) features, where the expansion puts them.

        >>> import pandas as pd
        >>> columns = Unstructured({"photo": "image"})
        >>> schema = columns.infer_schema(pd.DataFrame({"photo": ["a.npy"], "x": [1.0]}), {}, {})
        >>> [(c.name, c.kind) for c in schema.columns][:2], schema.names[-1]
        ([('photo', 'embedding'), ('photo.brightness', 'numeric')], 'x')
        """
        from keel.data import DataSource, open_source
        from keel.schema import ColumnSpec, Schema

        source = open_source(prepared(data, self.roles))
        plain = [name for name in source.schema.names if name not in self.roles]
        expanded = self.expanded_schema(source.schema)

        class Plain(DataSource):
            def batches(self, columns=None, batch_rows=262_144) -> Iterator[pa.RecordBatch]:
                yield from source.batches(columns=columns or plain, batch_rows=batch_rows)

        inferred = {}
        if plain:
            plain_source = Plain(
                name=source.name,
                schema=pa.schema([source.schema.field(n) for n in plain]),
                num_rows=source.num_rows,
            )
            known = {k: v for k, v in roles.items() if k in plain}
            typed = {k: v for k, v in kinds.items() if k in plain}
            inferred = {c.name: c for c in Schema.infer(plain_source, known, typed).columns}
        columns = []
        for arrow_field in expanded:
            name = arrow_field.name
            if name in inferred:
                columns.append(inferred[name])
                continue
            kind = "embedding" if name in self.roles else kind_of_derived(arrow_field.type)
            columns.append(
                ColumnSpec(name, kind, roles.get(name, "feature"), str(arrow_field.type))
            )
        return Schema(columns)

    def expanded_schema(self, schema: pa.Schema) -> pa.Schema:
        fields = []
        for arrow_field in schema:
            role = self.roles.get(arrow_field.name)
            if role is None:
                fields.append(arrow_field)
                continue
            fields.append(pa.field(arrow_field.name, VECTOR_TYPE))
            for derived in self.derived(arrow_field.name):
                kind = pa.string() if derived.endswith(".script") else pa.float64()
                fields.append(pa.field(derived, kind))
        return pa.schema(fields)

    def expand(self, data: Any, reference: bool = False) -> Any:
        """A ``DataSource`` reading ``data`` expanded batch by batch (any input
        ``keel.data.open_source`` takes). Data without the unstructured columns reads as it
        is, so the drift check says which are missing. ``reference``: the data is the
        reference these columns were fitted on (see ``Unstructured.reference``)."""
        from dataclasses import replace

        from keel.data import DataSource, open_source

        if reference != self.reference:
            return replace(self, reference=reference).expand(data, reference)
        source = open_source(prepared(data, self.roles))
        if not any(name in source.schema.names for name in self.roles):
            return source
        columns = self
        parents = {d: n for n in self.roles for d in self.derived(n)}

        # A table in memory is expanded once, whoever reads it next (schema inference, the
        # windows, the bins): images are decoded once, not once per pass.
        kept: list[pa.Table] = []

        class Expanded(DataSource):
            def batches(self, columns=None, batch_rows=262_144) -> Iterator[pa.RecordBatch]:
                if source._table is not None:
                    if not kept:
                        whole = list(self._expanded(None, 262_144))
                        kept.append(
                            pa.Table.from_batches(whole) if whole else self.schema.empty_table()
                        )
                    table = kept[0] if columns is None else kept[0].select(columns)
                    yield from table.to_batches(max_chunksize=batch_rows)
                    return
                yield from self._expanded(columns, batch_rows)

            def _expanded(self, columns, batch_rows) -> Iterator[pa.RecordBatch]:
                wanted = None
                if columns is not None:
                    wanted = list(dict.fromkeys(parents.get(c, c) for c in columns))
                    wanted = [c for c in wanted if c in source.schema.names]
                offset = 0
                for batch in source.batches(columns=wanted, batch_rows=batch_rows):
                    expanded = columns_of.expand_batch(batch, offset)
                    offset += batch.num_rows
                    yield expanded if columns is None else expanded.select(columns)

        columns_of = columns
        return Expanded(
            name=source.name,
            schema=self.expanded_schema(source.schema),
            num_rows=source.num_rows,
        )

    def state(self) -> dict[str, Any]:
        """JSON-ready: the roles, dimensions, vocabularies and vectorizers."""
        return {
            "format": STATE_FORMAT,
            "roles": dict(self.roles),
            "dimensions": dict(self.dimensions),
            "vocabularies": {k: sorted(v) for k, v in self.vocabularies.items()},
            "vectorizers": {k: v.state() for k, v in self.vectorizers.items()},
            "image_grid": IMAGE_GRID,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Unstructured:
        from keel.profile.text_vectorizer import TextVectorizer

        if state.get("format") != STATE_FORMAT:
            raise FormatError(
                f"unstructured columns in format {state.get('format')!r}; this keel reads "
                f"format {STATE_FORMAT}"
            )
        return cls(
            dict(state["roles"]),
            {k: int(v) for k, v in state["dimensions"].items()},
            {k: TextVectorizer.from_state(v) for k, v in state["vectorizers"].items()},
            {k: frozenset(v) for k, v in state["vocabularies"].items()},
        )


def kind_of_derived(arrow_type: pa.DataType) -> str:
    """A derived column's kind: numbers are numeric, the script is categorical.

    >>> kind_of_derived(pa.float64()), kind_of_derived(pa.string())
    ('numeric', 'categorical')
    """
    return "numeric" if pa.types.is_floating(arrow_type) else "categorical"


def declared(
    embeddings: list[str] | None, texts: list[str] | None, images: list[str] | None
) -> dict[str, str]:
    """``{column: role}`` from the three lists; a column named twice is refused.

    >>> declared(["vec"], ["comment"], None)
    {'vec': 'embedding', 'comment': 'text'}
    """
    roles: dict[str, str] = {}
    for role, names in (("embedding", embeddings), ("text", texts), ("image", images)):
        for name in names or []:
            if name in roles and roles[name] != role:
                raise DataError(
                    f"column {name!r} is declared both an {roles[name]} and an {role} column"
                )
            roles[name] = role
    return roles


def prepared(data: Any, roles: Mapping[str, str]) -> Any:
    """A pandas frame whose image column holds arrays gets them as ``.npy`` bytes (Arrow
    cannot hold an array of 2 or 3 dimensions per row). Any other input is returned as it
    is.

    >>> import pandas as pd
    >>> frame = prepared(pd.DataFrame({"photo": [np.zeros((4, 4))]}), {"photo": "image"})
    >>> frame["photo"][0][:6]
    b'\x93NUMPY'
    """
    if not (type(data).__module__.startswith("pandas") and hasattr(data, "columns")):
        return data
    changed = {}
    for name, role in roles.items():
        if name not in data.columns or data[name].dtype != object:
            continue
        values = data[name].tolist()
        if role == "image" and any(isinstance(v, np.ndarray) for v in values):
            changed[name] = [_npy_bytes(v) if isinstance(v, np.ndarray) else v for v in values]
    return data.assign(**changed) if changed else data


def fitting_half(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Whether each text is in the half of the reference a text vectorizer is fitted on:
    chosen by a hash of its content, so equal texts are on the same side.

    >>> fitting_half(pa.array(["a", "a", "b"])).tolist()[0:2]
    [True, True]
    """
    from keel.fingerprint import row_hashes

    low, _ = row_hashes(pa.table({"text": texts}))
    return (low & np.uint64(1)) == 0


def vector_column(vectors: np.ndarray) -> pa.FixedSizeListArray:
    """A 2-D array (rows × dimensions) as an Arrow fixed-size list column, the embedding
    column keel reads.

    >>> vector_column(np.eye(2)).type
    FixedSizeListType(fixed_size_list<item: double>[2])
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), vectors.shape[1])


def _npy_bytes(array: np.ndarray) -> bytes:
    sink = io.BytesIO()
    np.save(sink, array, allow_pickle=False)
    return sink.getvalue()


def _vectors(matrix: np.ndarray, faults: list[str | None], valid: np.ndarray) -> pa.StructArray:
    """``VECTOR_TYPE`` rows: ``matrix`` rows where there is no fault, nulls where ``valid``
    (the input row was present) is false."""
    rows = len(faults)
    dimension = matrix.shape[1] if matrix.ndim == 2 else 0
    offsets = np.arange(rows + 1, dtype=np.int32) * dimension
    has_fault = np.array([f is not None for f in faults], dtype=bool)
    lists = pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(matrix.reshape(-1)), mask=pa.array(has_fault | ~valid)
    )
    return pa.StructArray.from_arrays(
        [lists, pa.array(faults, type=pa.string())],
        names=["vector", "fault"],
        mask=pa.array(~valid),
    )


def _embedding(
    columns: Unstructured, name: str, array: pa.Array, offset: int
) -> tuple[pa.StructArray, dict[str, pa.Array]]:
    rows, dimension = len(array), columns.dimensions[name]
    valid = np.asarray(pc.is_valid(array).to_numpy(zero_copy_only=False), dtype=bool)
    if not (
        pa.types.is_list(array.type)
        or pa.types.is_fixed_size_list(array.type)
        or pa.types.is_large_list(array.type)
    ):
        faults = [f"not a vector ({array.type})" if v else None for v in valid]
        return _vectors(np.zeros((rows, dimension)), faults, valid), {}
    lengths = pc.fill_null(pc.list_value_length(array), 0).to_numpy(zero_copy_only=False)
    matrix = np.full((rows, dimension), np.nan)
    fits = valid & (lengths == dimension)
    if fits.any():
        flat = pc.list_flatten(array.filter(pa.array(fits)))
        values = pc.cast(flat, pa.float64()).to_numpy(zero_copy_only=False)
        matrix[fits] = values.reshape(-1, dimension)
    with_nan = fits & np.isnan(matrix).any(axis=1)
    faults: list[str | None] = [None] * rows
    for row in np.flatnonzero(valid & ~fits):  # only the faulty rows
        faults[row] = f"{lengths[row]} dimensions, not {dimension}{_SEPARATOR}row {offset + row}"
    for row in np.flatnonzero(with_nan):
        faults[row] = f"missing values in the vector{_SEPARATOR}row {offset + row}"
    return _vectors(np.nan_to_num(matrix), faults, valid), {}


def _text(
    columns: Unstructured, name: str, array: pa.Array, offset: int
) -> tuple[pa.StructArray, dict[str, pa.Array]]:
    strings = pc.cast(array, pa.string())
    texts = strings.to_pylist()
    valid = np.array([t is not None for t in texts], dtype=bool)
    fitted = fitting_half(strings) & valid if columns.reference else np.zeros(len(texts), bool)
    described = text_module.text_descriptors(texts, columns.vocabularies[name])
    derived: dict[str, pa.Array] = {}
    for descriptor in text_module.COLUMNS:
        values = np.full(len(texts), np.nan)
        values[valid] = described.columns[descriptor]
        if descriptor == "oov_rate":
            values[fitted] = np.nan
        derived[f"{name}.{descriptor}"] = pa.array(values, mask=np.isnan(values))
    scripts = np.full(len(texts), None, dtype=object)
    scripts[valid] = described.script
    derived[f"{name}.script"] = pa.array(scripts.tolist(), type=pa.string())
    matrix = columns.vectorizers[name].transform(texts)
    faults = [
        FITTED if held else f"empty text{_SEPARATOR}row {offset + row}" if text == "" else None
        for row, (text, held) in enumerate(zip(texts, fitted, strict=True))
    ]
    return _vectors(np.nan_to_num(matrix), faults, valid), derived


def _image(
    columns: Unstructured, name: str, array: pa.Array, offset: int
) -> tuple[pa.StructArray, dict[str, pa.Array]]:
    items = array.to_pylist()
    rows = len(items)
    statistics = np.full((rows, len(image_module.COLUMNS)), np.nan)
    matrix = np.zeros((rows, IMAGE_GRID * IMAGE_GRID))
    faults: list[str | None] = [None] * rows
    valid = np.array([item is not None for item in items], dtype=bool)
    for first in range(0, rows, IMAGE_CHUNK):  # a chunk's pixels in memory at a time
        decoded: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
        for row in range(first, min(first + IMAGE_CHUNK, rows)):  # decoding: one at a time
            item = items[row]
            if item is None:
                continue
            label = str(item) if isinstance(item, str) else f"row {offset + row}"
            try:
                pixels = image_module.read_pixels(_as_image(item))
            except (OSError, ValueError) as error:
                faults[row] = f"{_fault_reason(error)}{_SEPARATOR}{label}"
                continue
            decoded.setdefault(pixels.shape, []).append((row, pixels))
        for group in decoded.values():  # the statistics over a stack of each size at once
            rows_of = np.array([row for row, _ in group])
            stack = np.stack([pixels for _, pixels in group])
            statistics[rows_of] = image_module.statistics_of_stack(stack)
            matrix[rows_of] = image_module.downsample_stack(stack, IMAGE_GRID)
    unusable = ~valid | np.array([f is not None for f in faults], dtype=bool)
    derived = {
        f"{name}.{statistic}": pa.array(
            statistics[:, i], mask=unusable | np.isnan(statistics[:, i])
        )
        for i, statistic in enumerate(image_module.COLUMNS)
    }
    return _vectors(matrix, faults, valid), derived


def _as_image(item: Any) -> Any:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return Path(item)
    return np.asarray(item, dtype=float)  # nested lists from Arrow


def _fault_reason(error: Exception) -> str:
    text = str(error)
    if "Pillow" in text:
        return "needs Pillow to decode"
    if "too small" in text:
        return "too small"
    if "shape" in text:
        return "not an image shape"
    if "missing or infinite" in text:
        return "missing pixel values"
    if "No such file" in text or isinstance(error, FileNotFoundError):
        return "file not found"
    return "undecodable"


_EXPANDERS = {"embedding": _embedding, "text": _text, "image": _image}
