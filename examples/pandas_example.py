"""Write pandas DataFrames: tz-aware timestamps, categoricals, decimals, nested values and
nulls become JSON records (docs/json-mapping.md), the categorical column is the record key and
the timestamp column the record timestamp.

    pip install "./clients/python[pandas,progress]"          # from the repository root (tqdm draws the bar)
    make build && bin/flightsink serve --dev                 # in another terminal
    python examples/pandas_example.py [grpc://127.0.0.1:8815]
"""

import sys
from decimal import Decimal

import pandas as pd

import flightsink

LOCATION = sys.argv[1] if len(sys.argv) > 1 else "grpc://127.0.0.1:8815"


def main():
    orders = pd.DataFrame(
        {
            "order_id": [1001, 1002, 1003],
            "customer": pd.Categorical(["ann", "bob", None]),  # sent as a dictionary column
            "total": [Decimal("9.50"), Decimal("1234.05"), None],  # decimal128: a JSON string "9.50"
            "express": pd.array([True, False, None], dtype="boolean"),
            "tags": [["new", "gift"], [], None],
            "ship_to": [{"city": "Zürich", "zip": "8001"}, {"city": "Köln", "zip": None}, None],
            "ordered_at": pd.to_datetime(
                ["2026-01-02 04:04:05.678", "2026-01-02 04:04:06.000", None], format="ISO8601"
            ).tz_localize("Europe/Berlin"),  # 03:04:05.678 UTC
        }
    )
    # The DataFrame is converted with pyarrow.Table.from_pandas(df, preserve_index=False).
    with flightsink.Writer(LOCATION, "example-pandas", key_field="customer", timestamp_field="ordered_at") as w:
        w.write(orders)
        print("checkpoint:", w.checkpoint())
    print("done:", w.done)

    # A larger frame in chunks with periodic checkpoints; progress=True draws a tqdm bar (the
    # [progress] extra installs tqdm; without it, a warning says so).
    big = pd.DataFrame({"n": range(100_000), "square": [i * i for i in range(100_000)]})
    chunks = [big.iloc[i : i + 10_000] for i in range(0, len(big), 10_000)]
    done = flightsink.write_stream(
        LOCATION, "example-pandas-chunks", chunks, checkpoint_every_rows=25_000, progress=True
    )
    print("done:", done)


if __name__ == "__main__":
    main()
