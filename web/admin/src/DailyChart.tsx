import { Card, Text } from '@mantine/core';
import { useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

/**
 * A daily series chart drawn by uPlot on a canvas: the dashboard's four charts with recharts cost
 * 455 KB of script and most of the page's blocking time on a phone (bench:web), uPlot about 50 KB.
 * Stacked bars are drawn as running totals, the largest first, each series over the one before;
 * the legend (live under the pointer) shows each series' own value for the day.
 */
export interface DailySeries<Day> {
  key: keyof Day & string;
  name: string;
  color: string;
}

const chartHeight = 220;

export function DailyChart<Day extends { date: string }>({
  title,
  days,
  kind,
  series,
}: {
  title: string;
  days: Day[];
  kind: 'bar' | 'area';
  series: DailySeries<Day>[];
}) {
  const container = useRef<HTMLDivElement>(null);
  // The series are literals at each call: their keys decide when the chart is drawn again.
  const seriesKey = series.map((line) => `${line.key}:${line.color}`).join(',');
  // biome-ignore lint/correctness/useExhaustiveDependencies: seriesKey stands for series
  useEffect(() => {
    const element = container.current;
    if (!element) return;
    const amountOf = (day: Day, key: string): number => Number(day[key as keyof Day]) || 0;
    const x = days.map((day) => Date.parse(`${day.date}T00:00:00Z`) / 1000);
    let running = days.map(() => 0);
    const totals = series.map((line) => {
      running = running.map((sum, index) => sum + amountOf(days[index] as Day, line.key));
      return running;
    });
    // Each series is drawn over the one before, so the tallest (the last total) goes first.
    const drawn = series
      .map((line, index) => ({ line, values: totals[index] as number[] }))
      .reverse();
    const utc = (seconds: number) => uPlot.tzDate(new Date(seconds * 1000), 'Etc/UTC');
    let chart: uPlot | null = null;
    let resize: ResizeObserver | null = null;
    // Each chart is drawn in a task of its own once the page's figures are on screen: the four
    // drawn in the render's task made one long task that held a phone's main thread.
    const draw = () => {
      chart = new uPlot(
        {
          width: element.clientWidth,
          height: chartHeight,
          tzDate: utc,
          cursor: { points: { show: kind === 'area' } },
          scales: { x: { time: true }, y: { range: (_chart, _min, max) => [0, Math.max(1, max)] } },
          axes: [
            { space: 48, values: '{MM}-{DD}' },
            {
              size: 52,
              values: (_chart, splits) =>
                splits.map((value) => (Number.isInteger(value) ? value.toLocaleString() : '')),
            },
          ],
          series: [
            { label: 'Day', value: '{YYYY}-{MM}-{DD}' },
            ...drawn.map(({ line }) => ({
              label: line.name,
              stroke: line.color,
              fill: kind === 'bar' ? line.color : `${line.color}33`,
              width: kind === 'bar' ? 0 : 2,
              points: { show: false },
              value: (_chart: uPlot, _value: number, _series: number, index: number | null) =>
                index === null ? '' : amountOf(days[index] as Day, line.key).toLocaleString(),
              ...(kind === 'bar'
                ? { paths: uPlot.paths.bars?.({ size: [0.7, 40], align: 0 }) }
                : {}),
            })),
          ],
        },
        [x, ...drawn.map(({ values }) => values)],
        element,
      );
      resize = new ResizeObserver(() => {
        if (element.clientWidth > 0)
          chart?.setSize({ width: element.clientWidth, height: chartHeight });
      });
      resize.observe(element);
    };
    const scheduled = setTimeout(draw, 0);
    return () => {
      clearTimeout(scheduled);
      resize?.disconnect();
      chart?.destroy();
    };
  }, [days, kind, seriesKey]);
  return (
    <Card withBorder padding="sm">
      <Text fw={600} mb="xs">
        {title}
      </Text>
      <div
        ref={container}
        role="img"
        aria-label={`${title}, per day`}
        style={{ minHeight: chartHeight }}
      />
    </Card>
  );
}
