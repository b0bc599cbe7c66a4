/** Architecture rules (STYLE.md): no cycles; controller and worker never import each other; pure cores stay pure. */
const PURE =
  '^controller/(scheduler|planner|autoscaler)/|^sim/engine/model/|/state-machine|^controller/leader/lease-decision';
module.exports = {
  forbidden: [
    { name: 'no-cycles', severity: 'error', from: {}, to: { circular: true } },
    {
      name: 'controller-not-worker',
      severity: 'error',
      from: { path: '^controller/' },
      to: { path: '^worker/' },
    },
    {
      name: 'worker-not-controller',
      severity: 'error',
      from: { path: '^worker/' },
      to: { path: '^controller/' },
    },
    {
      name: 'common-is-a-leaf',
      severity: 'error',
      from: { path: '^common/' },
      to: { path: '^(cli|client|controller|worker|sim|bench)/' },
    },
    {
      name: 'pure-cores-no-io',
      comment: 'decision logic imports no gRPC, Redis, BullMQ, Kubernetes client, process or network module',
      severity: 'error',
      from: { path: PURE },
      to: {
        path: '@grpc|ioredis|bullmq|@kubernetes|^(node:)?(child_process|net|http|https|http2|dgram|fs)$',
        dependencyTypes: ['npm', 'core'],
      },
    },
    { name: 'no-unresolvable', severity: 'error', from: {}, to: { couldNotResolve: true } },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      extensions: ['.ts', '.js'],
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
    },
  },
};
