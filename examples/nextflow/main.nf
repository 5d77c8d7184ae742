#!/usr/bin/env nextflow
// Upload the files listed in a manifest to GHGA in N shards, one task per shard.
//
//   nextflow run examples/nextflow/main.nf --manifest files.tsv --shards 8 \
//       --upload_wpat ~/.ghga/upload.wpat --public_key ~/.ghga/key.pub --private_key ~/.ghga/key.sec
//
// files.tsv holds 'absolute path<TAB>alias' lines. Each task runs
// `ghga-connector upload --shard K/N`: the K-th of N shares, balanced by bytes and the
// same on every node, so tasks never overlap. A failed or killed task is retried: the
// connector continues interrupted uploads from its journal in GHGA_CONNECTOR_STATE_DIR
// (put it on storage all nodes share) and skips files already in the box.
// Downloads work the same way with `ghga-connector download --output-dir DIR --decrypt --shard K/N`.
// The file parameters may be relative to the launch folder: they are made absolute with
// file() here, since every task runs in its own work folder.
// (Nextflow is not run by the test suite; tests/integration/test_docs_commands.py checks
// that every file parameter goes through file().)

nextflow.enable.dsl = 2

params.manifest = 'files.tsv'
params.shards = 4
params.connector = 'ghga-connector'
params.upload_wpat = 'upload.wpat'
params.public_key = 'key.pub'
params.private_key = 'key.sec'

process UPLOAD_SHARD {
    tag "shard ${k}/${params.shards}"
    errorStrategy 'retry'
    maxRetries 3
    cpus 4
    memory '2 GB'

    input:
    val k

    output:
    path "upload-${k}.jsonl"

    script:
    """
    ${params.connector} --json upload \\
        --wpat-file '${file(params.upload_wpat)}' \\
        --my-public-key-path '${file(params.public_key)}' \\
        --my-private-key-path '${file(params.private_key)}' \\
        --manifest '${file(params.manifest)}' \\
        --shard ${k}/${params.shards} > upload-${k}.jsonl
    """
}

workflow {
    Channel.of(1..params.shards) | UPLOAD_SHARD
}
