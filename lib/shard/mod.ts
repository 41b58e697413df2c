/**
 * Sharded runs for array jobs (Kubernetes Indexed Jobs, Slurm arrays): users assigned to shards by
 * a stable hash, parts with sidecar manifests, and the merge that rebuilds byte for byte what one
 * unsharded run writes. Re-exports only.
 *
 * @module
 */

export * from "./shard.ts";
export * from "./part.ts";
export * from "./identity.ts";
export * from "./merge.ts";
