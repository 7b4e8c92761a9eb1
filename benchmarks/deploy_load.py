"""Deployment under load: many concurrent clients against one fedjit server
on loopback, doing FedAvg on the softmax model of `round_speed.py` (784
features, 10 classes, 100 examples per client in batches of 20).

The clients are simulated in a few processes with gRPC's asyncio API: each
has its own Ed25519 key on the server's allow-list and signs every request;
each round it checks in, downloads the task (the model) and submits an
update. To measure the server rather than the clients' training, every
client submits the same valid update (the client program's outputs on one
client's data, computed once); the server verifies, decodes and aggregates
each one as it would any other.

Reported: rounds per minute, the server's CPU seconds per round and peak
memory, the time from a round's last report to its commit (`finish`), and
the server's time per client update against the simulation's
(`process.next` on the same cohort, vectorized, one compiled program).

Run:  python benchmarks/deploy_load.py                 (1,000 clients, 3 rounds)
      python benchmarks/deploy_load.py --clients 200 --rounds 2 --processes 2
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CHILD = r"""
import asyncio, json, sys, time
import grpc
from fedjit import deploy
from fedjit.deploy import _protocol as proto
spec = json.load(open(sys.argv[1]))
parts = [bytes.fromhex(p) for p in spec["parts"]]
M = proto.messages

async def client(path, rounds, address):
  identity = deploy.ClientIdentity.load(path)
  ser = lambda m: m.SerializeToString()
  async with grpc.aio.insecure_channel(address, options=[
      ("grpc.max_receive_message_length", 2 << 20)]) as ch:
    check = ch.unary_unary(proto.METHODS["CheckIn"], request_serializer=ser,
                           response_deserializer=M.CheckInResponse.FromString)
    task = ch.unary_stream(proto.METHODS["GetTask"], request_serializer=ser,
                           response_deserializer=M.TaskPart.FromString)
    submit = ch.stream_unary(proto.METHODS["SubmitResult"], request_serializer=lambda b: b,
                             response_deserializer=M.SubmitResponse.FromString)
    done = 0
    while done < rounds:
      req = M.CheckInRequest()
      a = await check(req, metadata=list(deploy.sign_request(
          identity, proto.METHODS["CheckIn"], req.SerializeToString()).items()))
      if a.status != "selected":
        await asyncio.sleep(min(a.retry_after_ms / 1000, 0.5))
        continue
      treq = M.TaskRequest(round=a.round)
      async for _ in task(treq, metadata=list(deploy.sign_request(
          identity, proto.METHODS["GetTask"], treq.SerializeToString()).items())):
        pass
      head = M.SubmitPart(header=M.SubmitHeader(round=a.round, num_values=spec["num_values"]))
      body = [head.SerializeToString()] + parts
      r = await submit(iter(body), metadata=list(deploy.sign_request(
          identity, proto.METHODS["SubmitResult"], proto.stream_body(body)).items()))
      if r.outcome == "accepted":
        done += 1

async def main():
  await asyncio.gather(*[client(p, spec["rounds"], spec["address"]) for p in spec["keys"]])
asyncio.run(main())
"""


def main() -> None:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--clients", type=int, default=1000)
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--processes", type=int, default=4)
  args = p.parse_args()

  import jax
  import jax.numpy as jnp
  import numpy as np
  import optax
  import fedjit
  from fedjit import deploy, learning
  from fedjit.deploy import _wire, _protocol as proto

  model = learning.models.from_functions(
      lambda k: {"w": jnp.zeros((784, 10)), "b": jnp.zeros(10)},
      lambda q, x: x @ q["w"] + q["b"],
      lambda y, logits: optax.softmax_cross_entropy_with_integer_labels(logits, y),
      input_spec=((np.float32, [None, 784]), (np.int32, [None])))
  process = learning.algorithms.build_weighted_fed_avg(model, learning.optimizers.build_sgdm(0.1))
  rng = np.random.default_rng(0)
  x = rng.normal(size=(100, 784)).astype(np.float32)
  y = rng.integers(0, 10, 100).astype(np.int32)
  dataset = [(x[i:i + 20], y[i:i + 20]) for i in range(0, 100, 20)]

  work = tempfile.mkdtemp(prefix="fedjit-load-")
  allow, keys = deploy.AllowList(), []
  for i in range(args.clients):
    identity = deploy.ClientIdentity.generate()
    path = os.path.join(work, f"k{i}.sign.key")
    identity.save(path)
    allow.add(identity.public_key_bytes, f"k{i}")
    keys.append(path)
  server = deploy.Server(process, allow_list=allow, store_path=os.path.join(work, "s.db"),
                         config=deploy.RoundConfig(goal_count=args.clients, over_selection=1.0,
                                                   selection_timeout=600,
                                                   reporting_deadline=600),
                         insecure=True, address="127.0.0.1:0", max_workers=16)
  finish_times = []
  commit = server._commit

  def timed_commit(*a):
    t = time.perf_counter()
    out = commit(*a)
    finish_times.append(time.perf_counter() - t)
    return out
  server.machine._commit = timed_commit
  port = server.start()
  plan = server.plan
  task = plan.prepare([process.initialize()])
  outputs = plan.run_client(plan.client_program, [dataset], task.broadcasts)
  types = [t.member for t in plan.client_program.type_signature.result.types()]
  parts = [proto.messages.SubmitPart(value=v).SerializeToString().hex()
           for value, t in zip(outputs, types) for v in _wire.encode_value(value, t)]
  children = []
  per = -(-args.clients // args.processes)
  cpu0 = resource.getrusage(resource.RUSAGE_SELF)
  t0 = time.perf_counter()
  for k in range(args.processes):
    spec_path = os.path.join(work, f"spec{k}.json")
    with open(spec_path, "w") as fh:
      json.dump({"keys": keys[k * per:(k + 1) * per], "rounds": args.rounds,
                 "address": f"127.0.0.1:{port}", "parts": parts,
                 "num_values": len(outputs)}, fh)
    children.append(subprocess.Popen([sys.executable, "-c", CHILD, spec_path]))
  for c in children:
    c.wait()
  wall = time.perf_counter() - t0
  cpu1 = resource.getrusage(resource.RUSAGE_SELF)
  server_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
  committed = server.committed_rounds
  commits = server.store.events("commit")
  server.stop()

  # The same round in simulation: one compiled program on the same cohort.
  cohort = [dataset] * args.clients
  state = process.initialize()
  process.next(state, cohort)  # compile
  t = time.perf_counter()
  for _ in range(3):
    jax.block_until_ready(jax.tree_util.tree_leaves(process.next(state, cohort).state))
  sim = (time.perf_counter() - t) / 3
  round_wall = wall / max(committed, 1)
  print(f"| clients | rounds | rounds/min | server CPU s/round | peak RSS MB | last report "
        f"-> commit s | server s/update | simulation s/update |")
  print("|---|---|---|---|---|---|---|---|")
  print(f"| {args.clients} | {committed} | {60 / round_wall:.1f} | "
        f"{server_cpu / max(committed, 1):.2f} | {cpu1.ru_maxrss / 1024:.0f} | "
        f"{np.median(finish_times):.3f} | {round_wall / args.clients * 1e3:.2f} ms | "
        f"{sim / args.clients * 1e3:.3f} ms |")
  print(f"(wall {wall:.1f} s for {committed} rounds; {len(commits)} commits in the store; "
        f"simulated round {sim:.3f} s)")


if __name__ == "__main__":
  main()
