"""The one pipeline-rank interpreter: every runtime executes schedules through it.

A :class:`PipelineInterpreter` runs one pipeline rank's action list (``schedule.actions[p]``
after :func:`~ringpipe.schedules.add_communication`) and nothing else decides the order
of work. It owns what is the same on every runtime:

* **dispatch** of compute actions to a :class:`Worker` (training: F, B, I, W on the
  model's stages; inference: forward-only passes with a KV cache). The worker returns
  the tensors a stage hands on; the interpreter routes them. An overlapped F/B pair
  (DualPipeV's ``(0F7;7B3)OVERLAP_F_B``) is one action whose two halves are dispatched
  in order, as PyTorch's runtime does; the schedule's messages for both come before it
  and after it.
* **routing**: a stage's output goes to stage s+1 (F) or its input gradient to s-1 (B).
  When that stage lives on this pipeline rank (interleaved with p = 1, the turn of a V)
  it is handed over locally; otherwise it waits in the outbox for the schedule's
  ``SEND`` action. Messages are keyed ``(direction, receiving stage, micro-batch)``,
  like an MPI tag.
* **batching**: a maximal run of consecutive SEND/RECV actions is posted as one batch and
  completed together, the model the validator checks (``sends="batched"``, as
  ``torch.distributed.batch_isend_irecv`` and Megatron-LM's p2p layer post them), so
  every validated schedule runs without deadlock on every transport.
* **counters**: activations held (F adds one, B or I releases it) and their peak, and
  bytes sent to other pipeline ranks.

A runtime contributes only a :class:`Transport` (in-process queues, MPI Isend/Irecv,
...) and the group collective the worker's layers call. A transport's ``finish`` may
return None ("not yet"): the in-process runtime then moves on to another rank and
retries; MPI blocks until the batch completes.

A payload is a list with one array per TP rank this process holds (all T in-process,
one under MPI), so one interpreter serves both layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ringpipe.schedules import Action, ActionKind

K = ActionKind
#: Message key: ("F" activations | "B" gradients, receiving stage, micro-batch).
Key = tuple[str, int, int]

#: How each communication kind routes: (direction, stage offset of the peer, is a send).
_ROUTES = {K.SEND_F: ("F", +1, True), K.RECV_F: ("F", -1, False),
           K.SEND_B: ("B", -1, True), K.RECV_B: ("B", +1, False)}
COMM_KINDS = frozenset(_ROUTES)


@dataclass(frozen=True)
class Send:
    """One outgoing message: ``payload`` (one array per local TP rank) for ``peer``."""

    peer: int
    key: Key
    payload: list


@dataclass(frozen=True)
class Recv:
    """One expected message from pipeline rank ``peer``, of ``shape`` and ``dtype``."""

    peer: int
    key: Key
    shape: tuple[int, ...]
    dtype: Any


class Transport(Protocol):
    """Moves one batch of messages between pipeline ranks of one replica (and TP rank)."""

    def start(self, sends: list[Send], recvs: list[Recv]) -> object:
        """Post every send and receive of the batch; returns a handle."""

    def finish(self, handle: object) -> dict[Key, list] | None:
        """The received payloads once the whole batch is done, or None if not yet."""


class Worker(Protocol):
    """The compute of one pipeline rank. Each method gets the payload that arrived for
    the action (None where the stage's input is data, or the loss starts the backward)
    and returns the payload to hand on (None where nothing goes on)."""

    def forward(self, stage: int, mb: int, inputs: list | None) -> list | None:
        """F: run ``stage`` forward on micro-batch ``mb``."""

    def backward(self, stage: int, mb: int, grads: list | None) -> list | None:
        """B: full backward (input and weight gradients)."""

    def backward_input(self, stage: int, mb: int, grads: list | None) -> list | None:
        """I: the input gradient only (zero-bubble split)."""

    def backward_weight(self, stage: int, mb: int) -> None:
        """W: the weight gradient of an earlier I."""

    def message_shape(self, key: Key) -> tuple[tuple[int, ...], Any]:
        """(shape, dtype) of one TP rank's array of message ``key``."""


def _units(program: Sequence[Action]) -> list[tuple[Action, ...]]:
    """The program as units: one compute action, or a maximal run of comm actions."""
    units: list[tuple[Action, ...]] = []
    run: list[Action] = []
    for a in program:
        if a.kind in COMM_KINDS:
            run.append(a)
            continue
        if run:
            units.append(tuple(run))
            run = []
        units.append((a,))
    if run:
        units.append(tuple(run))
    return units


class PipelineInterpreter:
    """Executes pipeline rank ``rank``'s actions; see the module docstring.

    ``placement[s]`` is the pipeline rank holding stage s; ``tp_ranks_here`` the length
    of every payload list. :meth:`advance` runs as far as messages allow and says
    whether anything ran; :attr:`done` is true once the program has finished.
    """

    def __init__(self, rank: int, program: Sequence[Action | None], placement: Sequence[int],
                 worker: Worker, transport: Transport, tp_ranks_here: int) -> None:
        self.rank = rank
        self.placement = tuple(placement)
        self.worker, self.transport = worker, transport
        self.units = _units([a for a in program if a is not None])
        self.pc = 0
        self.pending: object | None = None
        self.inbox: dict[Key, list] = {}
        self.outbox: dict[Key, list] = {}
        self.held = 0
        self.peak = 0
        self.bytes_sent = [0] * tp_ranks_here  # to other pipeline ranks, per local TP rank

    @property
    def done(self) -> bool:
        """Whether every action has run."""
        return self.pc == len(self.units)

    @property
    def next_action(self) -> Action | None:
        """The first action not yet completed (for deadlock reports)."""
        return None if self.done else self.units[self.pc][0]

    def advance(self) -> bool:
        """Run units until the program ends or a message has not arrived yet."""
        progressed = False
        while not self.done:
            unit = self.units[self.pc]
            if unit[0].kind in COMM_KINDS:
                if not self._communicate(unit):
                    return progressed
            else:
                self._compute(unit[0])
            self.pc += 1
            progressed = True
        return progressed

    def run(self) -> None:
        """Run to the end; for transports whose ``finish`` blocks (MPI)."""
        while not self.done:
            if not self.advance():
                raise RuntimeError(f"pipeline rank {self.rank}: transport returned no "
                                   f"messages for {self.next_action}")

    # -- compute -----------------------------------------------------------------------
    def _compute(self, a: Action) -> None:
        if a.kind is K.OVERLAP_F_B:
            for part in a.parts:
                self._compute(part)
            return
        s, mb, w = a.stage, a.microbatch, self.worker
        if a.kind is K.FORWARD:
            self.held += 1
            self.peak = max(self.peak, self.held)
            out = w.forward(s, mb, self.inbox.pop(("F", s, mb), None))
            self._hand_on("F", s + 1, mb, out)
        elif a.kind is K.FULL_BACKWARD or a.kind is K.BACKWARD_INPUT:
            grads = self.inbox.pop(("B", s, mb), None)
            step = w.backward if a.kind is K.FULL_BACKWARD else w.backward_input
            out = step(s, mb, grads)
            self.held -= 1
            self._hand_on("B", s - 1, mb, out)
        elif a.kind is K.BACKWARD_WEIGHT:
            w.backward_weight(s, mb)
        else:
            raise ValueError(f"pipeline rank {self.rank}: cannot execute {a}")

    def _hand_on(self, direction: str, dst: int, mb: int, payload: list | None) -> None:
        if payload is None or not 0 <= dst < len(self.placement):
            return
        box = self.inbox if self.placement[dst] == self.rank else self.outbox
        box[(direction, dst, mb)] = payload

    # -- messages ----------------------------------------------------------------------
    def _communicate(self, batch: tuple[Action, ...]) -> bool:
        if self.pending is None:
            sends, recvs = [], []
            for a in batch:
                direction, offset, is_send = _ROUTES[a.kind]
                peer_stage = a.stage + offset
                peer = self.placement[peer_stage]
                if is_send:
                    key = (direction, peer_stage, a.microbatch)
                    payload = self.outbox.pop(key)
                    if peer == self.rank:  # neighbour stage on this rank: no message
                        self.inbox[key] = payload
                        continue
                    sends.append(Send(peer, key, payload))
                    for t, x in enumerate(payload):
                        self.bytes_sent[t] += x.nbytes
                else:
                    key = (direction, a.stage, a.microbatch)
                    if peer == self.rank:
                        continue
                    recvs.append(Recv(peer, key, *self.worker.message_shape(key)))
            self.pending = self.transport.start(sends, recvs)
        arrived = self.transport.finish(self.pending)
        if arrived is None:
            return False
        self.inbox.update(arrived)
        self.pending = None
        return True
