import type { ViteUserConfig } from 'vitest/config';
import { pinholeVitestConfig } from '../../vitest.shared.ts';

const config: ViteUserConfig = pinholeVitestConfig('metrics');
export default config;
