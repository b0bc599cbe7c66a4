#!/usr/bin/python3
"""Streams one generation from corral's gRPC Inference.Generate and prints the text as it arrives.

Run it with Debian's interpreter (/usr/bin/python3), which sees python3-grpcio, after compiling the protos:
    examples/python/run.sh --target 127.0.0.1:50051 --model llama-3.1-8b-instruct --prompt "Hello"
run.sh compiles proto/ into a temporary directory and puts it on PYTHONPATH (see generate.sh).

The API key (`corral up` prints it, and keeps it in .corral/local/api-key) is --api-key, else $CORRAL_API_KEY;
it travels as gRPC metadata `authorization: Bearer <key>`.

The text goes to stdout, unbuffered, one delta at a time; the finish reason and token usage go to stderr as
one line, `finished: reason=STOP prompt_tokens=N completion_tokens=M`, so stdout is exactly the answer.
Exit status: 0 on success, 1 with `error: CODE: details` on stderr when the call fails.
"""

import argparse
import os
import sys
import uuid

import grpc

from corral.v1 import inference_pb2, inference_pb2_grpc


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--target", required=True, help="controller gRPC address, host:port")
    p.add_argument("--model", required=True)
    p.add_argument("--prompt", help="a completion prompt")
    p.add_argument("--chat", help="one user message, sent as a chat")
    p.add_argument("--max-tokens", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--ignore-eos", action="store_true", help="generate exactly --max-tokens tokens")
    p.add_argument("--request-id", default="", help="client-chosen id (default: a new UUID)")
    p.add_argument("--timeout", type=float, default=60.0, help="deadline of the call, seconds")
    p.add_argument(
        "--api-key",
        default=os.environ.get("CORRAL_API_KEY", ""),
        help="the controller's API key (default: $CORRAL_API_KEY)",
    )
    args = p.parse_args(argv)
    if (args.prompt is None) == (args.chat is None):
        p.error("give exactly one of --prompt and --chat")
    return args


def build_request(args):
    req = inference_pb2.GenerateRequest(
        model=args.model,
        request_id=args.request_id or str(uuid.uuid4()),
        sampling=inference_pb2.SamplingParams(ignore_eos=args.ignore_eos),
    )
    if args.prompt is not None:
        req.prompt = args.prompt
    else:
        req.chat.messages.add(role="user", content=args.chat)
    # proto3 `optional`: set only what was given, so unset fields keep the deployment's defaults.
    if args.max_tokens is not None:
        req.max_tokens = args.max_tokens
    if args.seed is not None:
        req.sampling.seed = args.seed
    if args.temperature is not None:
        req.sampling.temperature = args.temperature
    return req


def main(argv):
    args = parse_args(argv)
    with grpc.insecure_channel(args.target) as channel:
        stub = inference_pb2_grpc.InferenceStub(channel)
        try:
            metadata = [("authorization", "Bearer " + args.api_key)] if args.api_key else []
            for event in stub.Generate(build_request(args), timeout=args.timeout, metadata=metadata):
                kind = event.WhichOneof("event")
                if kind == "delta":
                    sys.stdout.write(event.delta.text)
                    sys.stdout.flush()
                elif kind == "finished":
                    f = event.finished
                    sys.stdout.write("\n")
                    sys.stdout.flush()
                    print(
                        "finished: reason=%s prompt_tokens=%d completion_tokens=%d request_id=%s"
                        % (
                            inference_pb2.FinishReason.Name(f.reason).replace("FINISH_REASON_", ""),
                            f.usage.prompt_tokens,
                            f.usage.completion_tokens,
                            event.request_id,
                        ),
                        file=sys.stderr,
                    )
        except grpc.RpcError as e:
            print("error: %s: %s" % (e.code().name, e.details()), file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
