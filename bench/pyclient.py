#!/usr/bin/env python3
"""Python contenders of the flightsink benchmark (run by bench/cmd/benchrun).

  B  pyarrow client -> flightsink (exactly_once) -> Kafka: raw pyarrow.flight do_put, the
     dataset's record batches as they are, write_with_metadata({"checkpoint": N}) every
     --checkpoint-every rows, pipelined: it reads acks only to keep at most --pipeline (2)
     checkpoints unacknowledged (docs/protocol.md).
  P  what a Python user writes without flightsink: pyarrow table -> rows (to_pylist) ->
     json.dumps -> confluent_kafka.Producer (acks=all, idempotent, the same linger, batch size and
     compression as flightsink's producer, murmur2 partitioning like the Java client) -> Kafka.
  S  small streams: --streams streams of one record batch each (the dataset's batches, written
     with --rows-per-stream rows per batch), --concurrency at a time (threads), each timed from
     opening to its end. --target flightsink: raw pyarrow do_put, read `ready`, write the batch,
     done_writing, read `done`. --target native: confluent-kafka doing the same work, one producer
     per thread made before the timed window: exactly_once = begin_transaction, to_pylist ->
     json.dumps -> produce the rows, commit_transaction; at_least_once = an idempotent producer,
     produce the rows, flush.

The dataset (an Arrow IPC file written by benchrun) is read into memory before the timed window.
The last stdout line is one JSON object with the keys of benchdata.Result.
"""
import argparse
import json
import os
import resource
import sys
import time

import pyarrow as pa

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    fields = s[s.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu():
    """Busy CPU seconds of the whole machine since boot (/proc/stat, all but idle and iowait)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    vals = [int(v) for v in fields[1:9]]
    return (sum(vals) - vals[3] - vals[4]) / CLK_TCK


def self_cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class Watch:
    def __init__(self, spec):
        self.pids = {}
        for part in filter(None, (spec or "").split(",")):
            name, pid = part.split("=")
            self.pids[name] = int(pid)
        self.start = {}

    def begin(self):
        self.start = {n: proc_cpu(p) for n, p in self.pids.items()}
        self.machine = machine_cpu()

    def end(self):
        out = {n: proc_cpu(p) - self.start[n] for n, p in self.pids.items()}
        out["machine"] = machine_cpu() - self.machine
        return out


def load(path, rows=None):
    with open(path, "rb") as f:
        buf = pa.py_buffer(f.read())  # in memory, like the Go contenders; batches are zero-copy slices
    reader = pa.ipc.open_file(buf)
    batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
    if rows is not None:
        out, left = [], rows
        for b in batches:
            if left <= 0:
                break
            out.append(b.slice(0, left) if b.num_rows > left else b)
            left -= min(b.num_rows, left)
        batches = out
    return reader.schema, batches


def run_b(args, meta, watch):
    import pyarrow.flight as flight

    schema, batches = load(args.data)
    total = sum(b.num_rows for b in batches)
    client = flight.connect(f"grpc://{args.addr}")
    descriptor = flight.FlightDescriptor.for_command(json.dumps({
        "topic": args.topic, "key_field": meta["key_field"], "timestamp_field": meta["timestamp_field"],
        "delivery": "exactly_once"}))
    every = args.checkpoint_every

    watch.begin()
    cpu0, t0 = self_cpu(), time.perf_counter()
    writer, reader = client.do_put(descriptor, schema)
    ready = json.loads(reader.read().to_pybytes())
    if ready.get("type") != "ready":
        raise SystemExit(f"expected ready, got {ready}")
    sent = n = acked = 0
    wait = wait_max = 0.0

    def read_ack():
        nonlocal acked
        msg = json.loads(reader.read().to_pybytes())
        if msg.get("type") == "checkpoint":
            if msg["checkpoint"] <= acked:
                raise SystemExit(f"ack of checkpoint {msg['checkpoint']} after {acked}: out of order")
            acked = msg["checkpoint"]  # acks may be coalesced: N covers every earlier one
        return msg

    for b in batches:
        before = sent
        sent += b.num_rows
        if every and sent // every > before // every and sent < total:
            n += 1
            writer.write_with_metadata(b, pa.py_buffer(json.dumps({"checkpoint": n}).encode()))
            # Pipelined: keep sending while the server commits, with at most
            # --pipeline checkpoints unacknowledged (0: wait for each ack).
            c0 = time.perf_counter()
            while acked < n - args.pipeline:
                read_ack()
            d = time.perf_counter() - c0
            wait, wait_max = wait + d, max(wait_max, d)
        else:
            writer.write_batch(b)
    writer.done_writing()
    while (done := read_ack()).get("type") == "checkpoint":
        pass
    writer.close()
    if acked != n:
        raise SystemExit(f"sent {n} checkpoints, the newest ack is for {acked}")
    elapsed = time.perf_counter() - t0
    cpu = self_cpu() - cpu0
    watched = watch.end()
    if done.get("type") != "done" or done.get("total_rows") != total:
        raise SystemExit(f"expected done with total_rows={total}, got {done}")
    return dict(rows=total, value_bytes=meta["value_bytes"] if total == meta["rows"] else 0, seconds=elapsed,
                client_cpu_s=cpu, watched_cpu_s=watched, checkpoints=n, checkpoint_wait_s=wait, checkpoint_max_s=wait_max)


def run_p(args, meta, watch):
    from confluent_kafka import Producer

    _, batches = load(args.data, args.rows)
    total = sum(b.num_rows for b in batches)
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(err)

    producer = Producer({
        "bootstrap.servers": args.brokers,
        "client.id": "bench-python",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": args.compression,
        "batch.size": 1_000_000,
        "queue.buffering.max.kbytes": 65536,  # 64 MiB buffered, like flightsink's max_buffered_bytes
        "queue.buffering.max.messages": 1_000_000,
        "partitioner": "murmur2_random",  # the Java client's (and flightsink's) key hashing
        "on_delivery": on_delivery,
    })
    key_field, ts_field, topic = meta["key_field"], meta["timestamp_field"], args.topic

    watch.begin()
    cpu0, t0 = self_cpu(), time.perf_counter()
    nbytes = 0
    for b in batches:
        for row in b.to_pylist():
            value = json.dumps(row, default=str).encode()
            nbytes += len(value)
            ts = row[ts_field]
            ms = int(ts.timestamp() * 1000) if ts is not None else 0
            while True:
                try:
                    producer.produce(topic, value, row[key_field], timestamp=ms)
                    break
                except BufferError:
                    producer.poll(0.005)
        producer.poll(0)
    left = producer.flush(args.timeout)
    elapsed = time.perf_counter() - t0
    cpu = self_cpu() - cpu0
    watched = watch.end()
    if left:
        raise SystemExit(f"{left} messages still unacknowledged after {args.timeout}s")
    if errors:
        raise SystemExit(f"{len(errors)} messages failed; first: {errors[0]}")
    return dict(rows=total, value_bytes=nbytes, seconds=elapsed, client_cpu_s=cpu, watched_cpu_s=watched,
                checkpoints=0, note="values are json.dumps(row, default=str)")


def native_config(args, i):
    conf = {
        "bootstrap.servers": args.brokers,
        "client.id": f"bench-small-{i}",
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": 5,
        "compression.type": args.compression,
        "batch.size": 1_000_000,
        "partitioner": "murmur2_random",
    }
    if args.delivery == "exactly_once":
        conf["transactional.id"] = f"{args.topic}-{i}"
    return conf


def run_s(args, meta, watch):
    import threading

    schema, batches = load(args.data)
    if any(b.num_rows != args.rows_per_stream for b in batches):
        raise SystemExit(f"every batch of {args.data} must hold --rows-per-stream={args.rows_per_stream} rows")
    n, conc = args.streams, args.concurrency
    key_field, ts_field, topic = meta["key_field"], meta["timestamp_field"], args.topic
    lat = [0.0] * n
    rows = [0] * n
    errors = []
    barrier = threading.Barrier(conc + 1)

    def flightsink_worker(w):
        import pyarrow.flight as flight
        client = flight.connect(f"grpc://{args.addr}")
        descriptor = flight.FlightDescriptor.for_command(json.dumps({
            "topic": topic, "key_field": key_field, "timestamp_field": ts_field, "delivery": args.delivery}))
        barrier.wait()
        for i in range(w, n, conc):
            b = batches[i % len(batches)]
            t0 = time.perf_counter()
            writer, reader = client.do_put(descriptor, schema)
            ready = json.loads(reader.read().to_pybytes())
            if ready.get("type") != "ready":
                raise RuntimeError(f"stream {i}: expected ready, got {ready}")
            writer.write_batch(b)
            writer.done_writing()
            done = json.loads(reader.read().to_pybytes())
            writer.close()
            lat[i] = time.perf_counter() - t0
            if done.get("type") != "done" or done.get("total_rows") != b.num_rows:
                raise RuntimeError(f"stream {i}: expected done with total_rows={b.num_rows}, got {done}")
            rows[i] = done["total_rows"]
        client.close()

    def native_worker(w):
        from confluent_kafka import Producer
        failed = []

        def on_delivery(err, _msg):
            if err is not None:
                failed.append(err)

        p = Producer(dict(native_config(args, w), on_delivery=on_delivery))
        eos = args.delivery == "exactly_once"
        if eos:
            p.init_transactions(args.timeout)
        barrier.wait()
        for i in range(w, n, conc):
            b = batches[i % len(batches)]
            t0 = time.perf_counter()
            if eos:
                p.begin_transaction()
            for row in b.to_pylist():
                ts = row[ts_field]
                p.produce(topic, json.dumps(row, default=str).encode(), row[key_field],
                          timestamp=int(ts.timestamp() * 1000) if ts is not None else 0)
            if eos:
                p.commit_transaction(args.timeout)
            elif p.flush(args.timeout):
                raise RuntimeError(f"stream {i}: records unacknowledged after {args.timeout}s")
            lat[i] = time.perf_counter() - t0
            if failed:
                raise RuntimeError(f"stream {i}: {len(failed)} records failed; first: {failed[0]}")
            rows[i] = b.num_rows

    work = flightsink_worker if args.target == "flightsink" else native_worker

    def guarded(w):
        try:
            work(w)
        except BaseException as e:  # noqa: BLE001 - reported as the run's failure
            errors.append(f"worker {w}: {e!r}")
            barrier.abort()

    threads = [threading.Thread(target=guarded, args=(w,), daemon=True) for w in range(conc)]
    for t in threads:
        t.start()
    try:
        barrier.wait(args.timeout)
    except threading.BrokenBarrierError:
        raise SystemExit("; ".join(errors) or "a worker failed to start")
    watch.begin()
    cpu0, t0 = self_cpu(), time.perf_counter()
    for t in threads:
        t.join(args.timeout)
    elapsed = time.perf_counter() - t0
    cpu = self_cpu() - cpu0
    watched = watch.end()
    if errors:
        raise SystemExit("; ".join(errors))
    if any(t.is_alive() for t in threads):
        raise SystemExit(f"workers still running after {args.timeout}s")
    lat.sort()

    def q(x):
        return lat[min(max(int(-(-x * n // 1)) - 1, 0), n - 1)]

    return dict(rows=sum(rows), value_bytes=0, seconds=elapsed, client_cpu_s=cpu, watched_cpu_s=watched,
                checkpoints=0, streams=n, concurrency=conc, p50_s=q(0.5), p99_s=q(0.99), pmax_s=lat[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=["B", "P", "S"], required=True)
    ap.add_argument("--data", required=True, help="dataset file (Arrow IPC) written by benchrun")
    ap.add_argument("--topic", required=True)
    ap.add_argument("--addr", help="flightsink Flight address host:port (B)")
    ap.add_argument("--brokers", help="Kafka brokers (P)")
    ap.add_argument("--checkpoint-every", type=int, default=100_000, help="rows per checkpoint (B)")
    ap.add_argument("--pipeline", type=int, default=2, help="most checkpoints left unacknowledged (B); 0: wait for each")
    ap.add_argument("--rows", type=int, help="only the first ROWS rows (P)")
    ap.add_argument("--watch", default="", help="name=pid,... whose CPU to measure over the timed window")
    ap.add_argument("--name", help="contender name in the result (default: the mode)")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--compression", default="snappy", help="compression.type: flightsink's kafka.compression (P)")
    ap.add_argument("--target", choices=["flightsink", "native"], default="flightsink", help="who takes the small streams (S)")
    ap.add_argument("--delivery", choices=["exactly_once", "at_least_once"], default="exactly_once", help="S")
    ap.add_argument("--streams", type=int, default=100, help="how many small streams (S)")
    ap.add_argument("--concurrency", type=int, default=1, help="small streams at a time (S)")
    ap.add_argument("--rows-per-stream", type=int, default=100, help="rows of each small stream: the dataset's batch size (S)")
    args = ap.parse_args()
    with open(args.data + ".json") as f:
        meta = json.load(f)
    watch = Watch(args.watch)
    res = {"B": run_b, "P": run_p, "S": run_s}[args.mode](args, meta, watch)
    res["contender"] = args.name or args.mode
    print(json.dumps(res))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
