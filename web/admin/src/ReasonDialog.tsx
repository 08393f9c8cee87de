import { Alert, Button, Group, Modal, Stack, Textarea } from '@mantine/core';
import type { ReactNode } from 'react';

/**
 * The confirmation every destructive action asks for: what will happen, a reason (audited), and
 * the action's error if the API refused it.
 */
export function ReasonDialog({
  opened,
  onClose,
  title,
  children,
  reasonLabel,
  reason,
  onReason,
  reasonRequired = true,
  error,
  pending,
  cancelLabel,
  confirmLabel,
  confirmColor,
  onConfirm,
}: {
  opened: boolean;
  onClose: () => void;
  title: string;
  /** What will happen, above the reason. */
  children: ReactNode;
  reasonLabel: string;
  reason: string;
  onReason: (reason: string) => void;
  reasonRequired?: boolean;
  error: Error | null;
  pending: boolean;
  cancelLabel: string;
  confirmLabel: string;
  confirmColor?: string;
  onConfirm: () => void;
}) {
  return (
    <Modal opened={opened} onClose={onClose} title={title} centered>
      <Stack>
        {children}
        <Textarea
          label={reasonLabel}
          value={reason}
          onChange={(event) => onReason(event.currentTarget.value)}
          autosize
          minRows={2}
          maxLength={500}
          required={reasonRequired}
        />
        {error && (
          <Alert color="red" role="alert">
            {error.message}
          </Alert>
        )}
        <Group justify="flex-end">
          <Button variant="default" onClick={onClose}>
            {cancelLabel}
          </Button>
          <Button
            {...(confirmColor === undefined ? {} : { color: confirmColor })}
            loading={pending}
            disabled={reasonRequired && reason.trim().length === 0}
            onClick={onConfirm}
          >
            {confirmLabel}
          </Button>
        </Group>
      </Stack>
    </Modal>
  );
}
