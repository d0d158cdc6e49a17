import type { ViteUserConfig } from 'vitest/config';
import { pinholeVitestConfig } from '../../vitest.shared.ts';

const config: ViteUserConfig = pinholeVitestConfig('control');
export default config;
