// The node's writer: the only thread that writes to the store. A detached actor, so LMDB commits
// and fsyncs never block CAF's scheduler threads.
//
// Group commit: steps arrive as (commit_atom, step_delta_ptr) requests and are queued; a flush
// message the writer sends itself runs after every request already in its mailbox, so one LMDB
// transaction carries all steps that arrived meanwhile. Each request is answered after its
// transaction commits: with ok_atom, or with the error (nothing of the step was applied).
//
// Order: a worker numbers its steps (step_delta::step, from 1 per incarnation) and may send
// several before the first is answered. The writer applies them in that order only: a step whose
// predecessor was refused is refused too (errc::out_of_order), so that the worker can send them
// again, in order, and nothing commits on top of a step that did not.
//
// After each commit the writer sends wake_atom to the actors watching the edges that got records
// (consumers) or whose cursors moved (producers waiting on backpressure).
//
// Every interval it trims all edges by retention (so age limits apply to idle edges too),
// measures how full the map is (intake stops short of full, see store::update_pressure; what it
// logs and when waiting cannot end: room_watch.hpp), and at
// `process` durability forces the OS buffers to disk. A failed flush to disk ends the writer
// (the node then stops): what it acknowledged may no longer be on disk.
#pragma once

#include "store/step_delta.hpp"

#include <caf/actor.hpp>
#include <caf/atom.hpp>
#include <caf/fwd.hpp>

#include <chrono>

namespace troupe {

class store;

using commit_atom = caf::atom_constant<caf::atom("commit")>;
// (barrier_atom, stage_id, worker) -> uint64_t incarnation, answered once everything sent to the
// writer before it has been committed or refused. A worker sends it when it starts; its deltas
// then carry the incarnation, and deltas of older incarnations of the same worker are refused
// (errc::stopped), so a worker that outlived its replacement can never commit, not even a step it
// sends again after the barrier.
using barrier_atom = caf::atom_constant<caf::atom("barrier")>;
// (watch_atom, edge_id, bool on_append, actor): wake `actor` when the edge gets records
// (on_append) or when a consumer's cursor on it moves (!on_append).
using watch_atom = caf::atom_constant<caf::atom("watch")>;
// (wake_atom, std::vector<edge_id>, bool consumers): wake the consumers (true) or the producers
// (false) of these edges now.
using wake_atom = caf::atom_constant<caf::atom("wake")>;
// (admin_atom, step_delta_ptr) -> ok_atom: an operator's change (troupectl: dead letters put back
// or purged, cursors rewound), committed after what is queued, in a transaction of its own, without
// the fencing of a worker's steps; an error when it does not apply (nothing of it then does).
using admin_atom = caf::atom_constant<caf::atom("admin")>;
// (shutdown_atom): commit what is queued, flush to disk, exit. Send it after every stage is down.
using shutdown_atom = caf::atom_constant<caf::atom("shutdown")>;

// `db` must outlive the writer. The writer closes nothing; the node owns the store. When steps
// wait for room for `stall_limit` and no consumer can make any (see room_watch.hpp), the writer
// ends with errc::store_full and the node stops.
caf::actor spawn_writer(caf::actor_system& sys, store& db, std::chrono::milliseconds flush_interval,
                        std::chrono::milliseconds stall_limit = std::chrono::seconds{60});

} // namespace troupe

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(troupe::step_delta_ptr)
