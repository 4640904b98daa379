// Binary encoding of namespace commands for a replicated log: the protobuf
// CommandRequest of meta.proto (the same bytes the Execute RPC carries), so the wire
// and the log share one versioned format. Load once (async), then encode/decode are
// synchronous.
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS, protoPath } from '../common/proto.js';
import type { CommandRequest, CommandRequest__Output } from './gen/dfs/meta/CommandRequest.js';
import type { Envelope } from './types.js';
import { commandFromWire, commandToWire } from './wire.js';

export interface EnvelopeCodec {
  encode(envelope: Envelope): Buffer;
  /** The envelope, or null when the bytes name no known command (a newer writer). */
  decode(data: Buffer): Envelope | null;
}

let codecPromise: Promise<EnvelopeCodec> | undefined;

export function loadEnvelopeCodec(): Promise<EnvelopeCodec> {
  codecPromise ??= (async () => {
    const def = await protoLoader.load(await protoPath('meta', 'meta.proto'), PROTO_LOADER_OPTIONS);
    const service = def['dfs.meta.Meta'] as protoLoader.ServiceDefinition;
    const execute = service.Execute;
    const serialize = execute.requestSerialize as (value: CommandRequest) => Buffer;
    const deserialize = execute.requestDeserialize as (bytes: Buffer) => CommandRequest__Output;
    return {
      encode: (e) => serialize(commandToWire(e.command, e.clientId, e.seq)),
      decode: (data) => {
        const req = deserialize(data);
        const command = commandFromWire(req);
        return command ? { clientId: req.clientId, seq: req.seq, command } : null;
      },
    };
  })();
  return codecPromise;
}
