"""`mhsft sync`: a locally tracked run uploaded to SwanLab under its own run id, on demand or by a follower."""
