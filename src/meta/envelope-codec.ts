// Binary encoding of namespace commands for a replicated log: the protobuf
// CommandRequest of meta.proto (the same bytes the Execute RPC carries), so the wire
// and the log share one versioned format. Load once (async), then encode/decode are
// synchronous.
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_LOADER_OPTIONS, protoPath } from '../common/proto.js';
import type { CommandRequest, CommandRequest__Output } from './gen/dfs/meta/CommandRequest.js';
import type { CommandReply, CommandReply__Output } from './gen/dfs/meta/CommandReply.js';
import { Errno, type Command, type Envelope, type Result } from './types.js';
import { commandFromWire, commandReply, commandToWire, resultOfReply } from './wire.js';

export interface EnvelopeCodec {
  encode(envelope: Envelope): Buffer;
  /** The envelope, or null when the bytes name no known command (a newer writer). */
  decode(data: Buffer): Envelope | null;
  /** A command's result as the Execute RPC's CommandReply bytes (a forwarded command's answer); a failure needs no command. */
  encodeReply(command: Command | null, result: Result<unknown>): Buffer;
  decodeReply(data: Buffer): Result<unknown>;
}

let codecPromise: Promise<EnvelopeCodec> | undefined;

export function loadEnvelopeCodec(): Promise<EnvelopeCodec> {
  codecPromise ??= (async () => {
    const def = await protoLoader.load(await protoPath('meta', 'meta.proto'), PROTO_LOADER_OPTIONS);
    const service = def['dfs.meta.Meta'] as protoLoader.ServiceDefinition;
    const execute = service.Execute;
    const serialize = execute.requestSerialize as (value: CommandRequest) => Buffer;
    const deserialize = execute.requestDeserialize as (bytes: Buffer) => CommandRequest__Output;
    const serializeReply = execute.responseSerialize as (value: CommandReply) => Buffer;
    const deserializeReply = execute.responseDeserialize as (bytes: Buffer) => CommandReply__Output;
    return {
      encode: (e) => serialize(commandToWire(e.command, e.clientId, e.seq)),
      decode: (data) => {
        const req = deserialize(data);
        const command = commandFromWire(req);
        return command ? { clientId: req.clientId, seq: req.seq, command } : null;
      },
      encodeReply: (command, result) => serializeReply(result.ok && command ? commandReply(command, result) : { errno: result.ok ? Errno.EINVAL : result.errno }),
      decodeReply: (data) => resultOfReply(deserializeReply(data)),
    };
  })();
  return codecPromise;
}
